package profiles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/tsdb"
)

// The fixtures under testdata/<engine>/ are named <host>_<port>_t<ss>.prom:
// the exposition of instance <host>:<port> scraped <ss> seconds after
// firstScrape. Every instance is scraped at +0, +15, +30 and +45 s and the
// rules are evaluated at the last scrape, so a [1m] range holds four samples
// and rate() is (last - first) / 45 s (the window is left-open, the first
// sample lies one scrape interval after its start, and every counter starts
// high enough that extrapolation is not clipped at zero).
var (
	firstScrape = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	evalTime    = firstScrape.Add(45 * time.Second)
)

// profile names a profile file and how its fixtures are found.
type profile struct {
	engine string // group name and value of the engine label
	path   string // file path relative to this package
	// hasModel reports whether the engine's metrics name the model; when they
	// do not, rules output no model label and the collector adds it.
	hasModel bool
}

var allProfiles = []profile{
	{engine: "vllm", path: "vllm.yml", hasModel: true},
	{engine: "sglang", path: "sglang.yml", hasModel: true},
	{engine: "tgi", path: "tgi.yml", hasModel: false},
	{engine: "trtllm", path: "trtllm.yml", hasModel: true},
	{engine: "llamacpp", path: "llamacpp.yml", hasModel: false},
}

// catalogNames lists every signal an engine profile may record, and whether it is
// a latency signal recorded once per quantile.
var catalogNames = map[string]bool{
	"llm_instance_info":                      false,
	"llm_time_to_first_token_seconds":        true,
	"llm_inter_token_latency_seconds":        true,
	"llm_request_latency_seconds":            true,
	"llm_queue_time_seconds":                 true,
	"llm_prefill_time_seconds":               true,
	"llm_decode_time_seconds":                true,
	"llm_frontend_gap_seconds_mean":          false,
	"llm_frontend_gap_ratio":                 false,
	"llm_requests_running":                   false,
	"llm_requests_waiting":                   false,
	"llm_kv_cache_usage_ratio":               false,
	"llm_kv_cache_capacity_tokens":           false,
	"llm_preemptions_per_second":             false,
	"llm_prefix_cache_hit_ratio":             false,
	"llm_requests_per_second":                false,
	"llm_request_error_ratio":                false,
	"llm_prompt_tokens_per_second":           false,
	"llm_generation_tokens_per_second":       false,
	"llm_prompt_tokens_mean":                 false,
	"llm_generation_tokens_mean":             false,
	"llm_engine_restarts":                    false,
	"llm_spec_decode_acceptance_ratio":       false,
	"llm_spec_decode_acceptance_length_mean": false,
}

var quantiles = []string{"0.5", "0.95", "0.99"}

func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

func readProfile(t *testing.T, p profile) []byte {
	t.Helper()
	var (
		b   []byte
		err error
	)
	if filepath.Dir(p.path) == "." {
		b, err = FS.ReadFile(p.path)
	} else {
		b, err = os.ReadFile(p.path)
	}
	if err != nil {
		t.Fatalf("reading profile %s: %v", p.path, err)
	}
	return b
}

// parseProfile parses a profile with rulefmt the way the collector does, not
// tolerating unknown fields.
func parseProfile(t *testing.T, p profile) *rulefmt.RuleGroups {
	t.Helper()
	rgs, errs := rulefmt.Parse(readProfile(t, p), false, model.LegacyValidation, newParser(), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("parsing profile %s: %v", p.path, errors.Join(errs...))
	}
	return rgs
}

func TestEmbeddedProfiles(t *testing.T) {
	var got []string
	err := fs.WalkDir(FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			got = append(got, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking embedded profiles: %v", err)
	}
	// Every embedded file must have a row in allProfiles (and so a test).
	want := []string{"llamacpp.yml", "sglang.yml", "tgi.yml", "trtllm.yml", "vllm.yml"}
	if !slices.Equal(got, want) {
		t.Fatalf("embedded files = %v, want %v", got, want)
	}
}

func TestProfileStructure(t *testing.T) {
	for _, p := range allProfiles {
		t.Run(p.engine, func(t *testing.T) {
			rgs := parseProfile(t, p)
			if len(rgs.Groups) != 1 {
				t.Fatalf("got %d groups, want exactly 1", len(rgs.Groups))
			}
			g := rgs.Groups[0]
			if g.Name != p.engine {
				t.Errorf("group name = %q, want %q", g.Name, p.engine)
			}
			if len(g.Labels) > 0 {
				t.Errorf("group has labels %v; promtool 2.42 rejects group labels, put them on each rule", g.Labels)
			}
			if len(g.Rules) == 0 || g.Rules[0].Record != "llm_instance_info" {
				t.Errorf("first rule must record llm_instance_info")
			}

			seen := map[string][]string{} // record -> quantiles
			for i, r := range g.Rules {
				where := fmt.Sprintf("rule %d (%s)", i, r.Record)
				if r.Record == "" || r.Alert != "" {
					t.Errorf("%s: not a recording rule", where)
					continue
				}
				latency, ok := catalogNames[r.Record]
				if !ok {
					t.Errorf("%s: %q is not a known signal", where, r.Record)
				}
				if r.Labels["engine"] != g.Name {
					t.Errorf("%s: labels.engine = %q, want the group name %q", where, r.Labels["engine"], g.Name)
				}
				q, hasQ := r.Labels["quantile"]
				if hasQ != latency {
					t.Errorf("%s: quantile label present = %v, want %v", where, hasQ, latency)
				}
				if hasQ && !slices.Contains(quantiles, q) {
					t.Errorf("%s: quantile %q not one of %v", where, q, quantiles)
				}
				for name := range r.Labels {
					if name != "engine" && name != "quantile" {
						t.Errorf("%s: unexpected rule label %q", where, name)
					}
				}
				if slices.Contains(seen[r.Record], q) {
					t.Errorf("%s: recorded twice (quantile %q)", where, q)
				}
				seen[r.Record] = append(seen[r.Record], q)

				expr, err := newParser().ParseExpr(r.Expr)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				// The collector rewrites ranges from its config; profiles
				// must all use [1m] so that one rewrite fits all.
				parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
					if ms, ok := node.(*parser.MatrixSelector); ok && ms.Range != time.Minute {
						t.Errorf("%s: range %s, want 1m", where, model.Duration(ms.Range))
					}
					if sq, ok := node.(*parser.SubqueryExpr); ok {
						t.Errorf("%s: subquery %s not allowed", where, sq)
					}
					return nil
				})
			}
			for rec, qs := range seen {
				if catalogNames[rec] && len(qs) != len(quantiles) {
					t.Errorf("%s: recorded for quantiles %v, want %v", rec, qs, quantiles)
				}
			}
		})
	}
}

// fixtureName is <host>_<port>_t<seconds after firstScrape>.prom.
var fixtureName = regexp.MustCompile(`^([a-z0-9.-]+)_([0-9]+)_t([0-9]+)\.prom$`)

type fixture struct {
	path     string
	instance string
	ts       time.Time
}

// loadFixtures appends every fixture of dir to db the way a scraper would:
// each sample gets the scrape time as its timestamp and the target labels
// instance and job.
func loadFixtures(t *testing.T, db *tsdb.DB, dir, job string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.prom"))
	if err != nil {
		t.Fatalf("listing fixtures: %v", err)
	}
	if len(paths) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	var fixtures []fixture
	for _, path := range paths {
		m := fixtureName.FindStringSubmatch(filepath.Base(path))
		if m == nil {
			t.Fatalf("fixture %s: name does not match %s", path, fixtureName)
		}
		sec, err := strconv.Atoi(m[3])
		if err != nil {
			t.Fatalf("fixture %s: %v", path, err)
		}
		fixtures = append(fixtures, fixture{path: path, instance: m[1] + ":" + m[2], ts: firstScrape.Add(time.Duration(sec) * time.Second)})
	}
	// The TSDB takes samples of a series in time order only.
	sort.SliceStable(fixtures, func(i, j int) bool { return fixtures[i].ts.Before(fixtures[j].ts) })
	for _, f := range fixtures {
		if err := appendExposition(db, f, job); err != nil {
			t.Fatalf("loading fixture %s: %v", f.path, err)
		}
	}
}

func appendExposition(db *tsdb.DB, f fixture, job string) error {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	p, err := textparse.New(b, "text/plain; version=0.0.4; charset=utf-8", labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		return fmt.Errorf("creating parser: %w", err)
	}
	app := db.Appender(context.Background())
	var (
		lset labels.Labels
		n    int
	)
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = app.Rollback()
			return fmt.Errorf("parsing: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		p.Labels(&lset)
		lb := labels.NewBuilder(lset)
		lb.Set(model.InstanceLabel, f.instance)
		lb.Set(model.JobLabel, job)
		if _, err := app.Append(0, lb.Labels(), f.ts.UnixMilli(), v); err != nil {
			_ = app.Rollback()
			return fmt.Errorf("appending %s: %w", lset, err)
		}
		n++
	}
	if n == 0 {
		_ = app.Rollback()
		return errors.New("no samples")
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// evalProfile evaluates every rule of the profile's group at evalTime with
// the PromQL engine, as the collector's rule manager does, and returns every
// output series by its label set.
func evalProfile(t *testing.T, p profile, db *tsdb.DB) map[string]promql.Sample {
	t.Helper()
	rgs := parseProfile(t, p)
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples: 1_000_000,
		Timeout:    time.Minute,
		Parser:     newParser(),
	})
	query := rules.EngineQueryFunc(engine, db)
	out := map[string]promql.Sample{}
	for _, r := range rgs.Groups[0].Rules {
		expr, err := newParser().ParseExpr(r.Expr)
		if err != nil {
			t.Fatalf("rule %s: %v", r.Record, err)
		}
		rule := rules.NewRecordingRule(r.Record, expr, labels.FromMap(r.Labels))
		vec, err := rule.Eval(context.Background(), 0, evalTime, query, nil, 0)
		if err != nil {
			t.Fatalf("evaluating rule %s %v: %v", r.Record, r.Labels, err)
		}
		// A rule whose metric is misspelt returns nothing; the fixtures
		// hold every metric a rule reads, so an empty result is a bug.
		if len(vec) == 0 {
			t.Errorf("rule %s %v: no series from the fixtures", r.Record, r.Labels)
		}
		for _, s := range vec {
			key := s.Metric.String()
			if _, dup := out[key]; dup {
				t.Errorf("series %s produced by two rules", key)
			}
			out[key] = s
		}
	}
	return out
}

// want is one expected output series: the signal, its identity labels and the
// value worked out by hand from the fixtures.
type want struct {
	signal   string
	instance string
	model    string // empty for engines without a model label
	quantile string // empty for non-latency catalogNames
	value    float64
}

func (w want) labels(engine string) labels.Labels {
	b := labels.NewBuilder(labels.EmptyLabels())
	b.Set(model.MetricNameLabel, w.signal)
	b.Set("instance", w.instance)
	b.Set("engine", engine)
	b.Set("model", w.model) // Set with "" removes the label.
	b.Set("quantile", w.quantile)
	return b.Labels()
}

// q returns the three quantile rows of a latency signal.
func q(signal, instance, model string, p50, p95, p99 float64) []want {
	return []want{
		{signal: signal, instance: instance, model: model, quantile: "0.5", value: p50},
		{signal: signal, instance: instance, model: model, quantile: "0.95", value: p95},
		{signal: signal, instance: instance, model: model, quantile: "0.99", value: p99},
	}
}

func rows(groups ...[]want) []want { return slices.Concat(groups...) }

// sameValue compares within 1e-9 relative; two NaNs are equal (a quantile
// over a histogram that saw nothing in the window is NaN).
func sameValue(got, want float64) bool {
	if math.IsNaN(want) || math.IsNaN(got) {
		return math.IsNaN(want) && math.IsNaN(got)
	}
	if want == 0 {
		return got == 0
	}
	return math.Abs(got-want) <= 1e-9*math.Abs(want)
}

// TGI duration histogram bucket bounds (0.0001 × 1.5^(i+1)), as TGI prints them.
const (
	dur4  = 0.000759375
	dur5  = 0.0011390624999999999
	dur10 = 0.008649755859375
	dur11 = 0.0129746337890625
	dur12 = 0.01946195068359375
	dur13 = 0.029192926025390625
	dur14 = 0.043789389038085935
	dur20 = 0.49878850951194753
	dur21 = 0.7481827642679213
	dur22 = 1.122274146401882
	dur23 = 1.683411219602823
	dur24 = 2.5251168294042348
)

// Expected values. Counter rates are (value at +45 s − value at +0 s) / 45 s;
// the -a instance of each engine restarted after +30 s, so its counters and
// buckets at +45 s hold only what they gained since, and rate() adds the value
// before the reset back: its rates are the same sums of gains.
// Histogram quantiles are written with the bucket counts gained in the window
// (the / 45 s of rate() cancels): rank = q × total; inside the bucket
// (lower, upper] holding the rank, value = lower + (upper − lower) ×
// (rank − count below) / (count in bucket). The first bucket starts at 0.
var expected = map[string][]want{
	"vllm": rows(
		// vllm-a: V1, two data-parallel engines (engine="0", "1"), deprecated
		// aliases present with different values (so a rule that read the
		// alias would fail here).
		[]want{{signal: "llm_instance_info", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 1}},
		// TTFT increases in the window, engines 0+1 summed by bucket:
		// ≤0.06: 12+0, ≤0.08: 36+6 = 42, ≤0.1: 54+18 = 72, ≤0.25: 60+27 = 87, ≤0.5: 60+30 = 90.
		q("llm_time_to_first_token_seconds", "vllm-a:8000", "meta-llama/Llama-3.1-8B-Instruct",
			0.08+(0.1-0.08)*(0.5*90-42)/(72-42),
			0.1+(0.25-0.1)*(0.95*90-72)/(87-72),
			0.25+(0.5-0.25)*(0.99*90-87)/(90-87)),
		// ITL (not time_per_output_token): ≤0.025: 300, ≤0.05: 900+300 = 1200,
		// ≤0.075: 1140+480 = 1620, ≤0.1: 1200+570 = 1770, ≤0.15: 1200+600 = 1800.
		q("llm_inter_token_latency_seconds", "vllm-a:8000", "meta-llama/Llama-3.1-8B-Instruct",
			0.025+(0.05-0.025)*(0.5*1800-300)/(1200-300),
			0.075+(0.1-0.075)*(0.95*1800-1620)/(1770-1620),
			0.1+(0.15-0.1)*(0.99*1800-1770)/(1800-1770)),
		// e2e: ≤2.5: 0, ≤5: 30+12 = 42, ≤10: 60+42 = 102, ≤15: 75+57 = 132.
		q("llm_request_latency_seconds", "vllm-a:8000", "meta-llama/Llama-3.1-8B-Instruct",
			5+(10-5)*(0.5*132-42)/(102-42),
			10+(15-10)*(0.95*132-102)/(132-102),
			10+(15-10)*(0.99*132-102)/(132-102)),
		// queue: ≤0.3: 60+30 = 90, ≤0.5: 72+45 = 117, ≤0.8: 75+57 = 132.
		q("llm_queue_time_seconds", "vllm-a:8000", "meta-llama/Llama-3.1-8B-Instruct",
			0+(0.3-0)*(0.5*132-0)/(90-0),
			0.5+(0.8-0.5)*(0.95*132-117)/(132-117),
			0.5+(0.8-0.5)*(0.99*132-117)/(132-117)),
		// prefill: ≤0.3: 45+27 = 72, ≤0.5: 75+57 = 132.
		q("llm_prefill_time_seconds", "vllm-a:8000", "meta-llama/Llama-3.1-8B-Instruct",
			0+(0.3-0)*(0.5*132-0)/(72-0),
			0.3+(0.5-0.3)*(0.95*132-72)/(132-72),
			0.3+(0.5-0.3)*(0.99*132-72)/(132-72)),
		// decode: ≤2.5: 0, ≤5: 36+15 = 51, ≤10: 75+45 = 120, ≤15: 75+57 = 132.
		q("llm_decode_time_seconds", "vllm-a:8000", "meta-llama/Llama-3.1-8B-Instruct",
			5+(10-5)*(0.5*132-51)/(120-51),
			10+(15-10)*(0.95*132-120)/(132-120),
			10+(15-10)*(0.99*132-120)/(132-120)),
		// Frontend gap from the means of the window: e2e _sum +175 and
		// +152.5 per scrape (engines 0, 1), queue +5.25 and +6.1, inference
		// +140 and +128, every _count +25 and +19: 132 requests.
		[]want{
			{signal: "llm_frontend_gap_seconds_mean", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct",
				value: (3*(175+152.5) - 3*(5.25+6.1) - 3*(140+128)) / 132},
			{signal: "llm_frontend_gap_ratio", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct",
				value: (3*(175+152.5) - 3*(5.25+6.1) - 3*(140+128)) / (3 * (175 + 152.5))},
		},
		[]want{
			// Gauges at +45 s, engine 0 + engine 1.
			{signal: "llm_requests_running", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 12 + 9},
			{signal: "llm_requests_waiting", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 3 + 4},
			// max(0.62, 0.81) of kv_cache_usage_perc; gpu_cache_usage_perc would give 0.93.
			{signal: "llm_kv_cache_usage_ratio", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 0.81},
			// num_preemptions_total: engine 0 40→43, engine 1 25→31.
			{signal: "llm_preemptions_per_second", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: ((43 - 40) + (31 - 25)) / 45.0},
			// prefix_cache_hits_total 300000→327000, 200000→209000 over
			// prefix_cache_queries_total 600000→645000, 500000→536000
			// (the gpu_ hits would give 18000/81000).
			{signal: "llm_prefix_cache_hit_ratio", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct",
				value: ((327000 - 300000) + (209000 - 200000)) / float64((645000-600000)+(536000-500000))},
			// request_success_total gains, engine 0: stop 60, length 12, abort 3,
			// error 0, repetition 0; engine 1: stop 45, length 9, abort 0, error 3.
			{signal: "llm_requests_per_second", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (60 + 12 + 3 + 45 + 9 + 3) / 45.0},
			{signal: "llm_request_error_ratio", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (3 + 0 + 0 + 3) / 132.0},
			// prompt_tokens_total 900000→945000, 800000→836000.
			{signal: "llm_prompt_tokens_per_second", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (45000 + 36000) / 45.0},
			// generation_tokens_total 500000→518000, 450000→463500.
			{signal: "llm_generation_tokens_per_second", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (18000 + 13500) / 45.0},
			// request_prompt_tokens_sum gains 45000 + 36000, _count gains 75 + 57.
			{signal: "llm_prompt_tokens_mean", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (45000 + 36000) / float64(75+57)},
			// request_generation_tokens_sum gains 18000 + 13500, _count 75 + 57.
			{signal: "llm_generation_tokens_mean", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (18000 + 13500) / float64(75+57)},
			// Restarted after +30 s: every request_success_total series (both
			// engines, every reason that had counted) drops once.
			{signal: "llm_engine_restarts", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 1},
			// Speculative decoding on engine 0 only, restarted like the rest:
			// draft tokens 40000→40800 then 400 (gain 1200), accepted 18000→18360
			// then 180 (gain 540), drafts 10000→10200 then 100 (gain 300).
			{signal: "llm_spec_decode_acceptance_ratio", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 540.0 / 1200},
			{signal: "llm_spec_decode_acceptance_length_mean", instance: "vllm-a:8000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 1 + 540.0/300},
		},

		// vllm-b: old names only, no engine label, no finished_reason="abort" series.
		[]want{{signal: "llm_instance_info", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 1}},
		// TTFT: ≤0.04: 6, ≤0.06: 18, ≤0.08: 30.
		q("llm_time_to_first_token_seconds", "vllm-b:8000", "Qwen/Qwen2.5-7B-Instruct",
			0.04+(0.06-0.04)*(0.5*30-6)/(18-6),
			0.06+(0.08-0.06)*(0.95*30-18)/(30-18),
			0.06+(0.08-0.06)*(0.99*30-18)/(30-18)),
		// time_per_output_token: ≤0.025: 0, ≤0.05: 450, ≤0.075: 600.
		q("llm_inter_token_latency_seconds", "vllm-b:8000", "Qwen/Qwen2.5-7B-Instruct",
			0.025+(0.05-0.025)*(0.5*600-0)/(450-0),
			0.05+(0.075-0.05)*(0.95*600-450)/(600-450),
			0.05+(0.075-0.05)*(0.99*600-450)/(600-450)),
		// e2e (V0 buckets): ≤2.5: 0, ≤5: 18, ≤10: 30.
		q("llm_request_latency_seconds", "vllm-b:8000", "Qwen/Qwen2.5-7B-Instruct",
			2.5+(5-2.5)*(0.5*30-0)/(18-0),
			5+(10-5)*(0.95*30-18)/(30-18),
			5+(10-5)*(0.99*30-18)/(30-18)),
		// queue: ≤1: 27, ≤2.5: 30.
		q("llm_queue_time_seconds", "vllm-b:8000", "Qwen/Qwen2.5-7B-Instruct",
			0+(1-0)*(0.5*30-0)/(27-0),
			1+(2.5-1)*(0.95*30-27)/(30-27),
			1+(2.5-1)*(0.99*30-27)/(30-27)),
		// prefill: ≤1: 30.
		q("llm_prefill_time_seconds", "vllm-b:8000", "Qwen/Qwen2.5-7B-Instruct",
			0+(1-0)*(0.5*30)/30,
			0+(1-0)*(0.95*30)/30,
			0+(1-0)*(0.99*30)/30),
		// decode: ≤2.5: 0, ≤5: 18, ≤10: 30.
		q("llm_decode_time_seconds", "vllm-b:8000", "Qwen/Qwen2.5-7B-Instruct",
			2.5+(5-2.5)*(0.5*30-0)/(18-0),
			5+(10-5)*(0.95*30-18)/(30-18),
			5+(10-5)*(0.99*30-18)/(30-18)),
		[]want{
			// e2e _sum +52.5, queue +6.25, inference +44 per scrape, 10 requests.
			{signal: "llm_frontend_gap_seconds_mean", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: (3*52.5 - 3*6.25 - 3*44) / 30},
			{signal: "llm_frontend_gap_ratio", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: (3*52.5 - 3*6.25 - 3*44) / (3 * 52.5)},
			{signal: "llm_requests_running", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 5},
			{signal: "llm_requests_waiting", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 2},
			// gpu_cache_usage_perc at +45 s.
			{signal: "llm_kv_cache_usage_ratio", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 0.47},
			// num_preemptions_total stays at 12: no preemptions.
			{signal: "llm_preemptions_per_second", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 0},
			// gpu_prefix_cache_hits_total 50000→54500 over gpu_prefix_cache_queries_total 200000→218000.
			{signal: "llm_prefix_cache_hit_ratio", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: (54500 - 50000) / float64(218000-200000)},
			// request_success_total: stop 900→924, length 100→106.
			{signal: "llm_requests_per_second", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: ((924 - 900) + (106 - 100)) / 45.0},
			// No abort series at all: 0, not absent.
			{signal: "llm_request_error_ratio", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 0},
			// prompt_tokens_total 300000→318000; generation_tokens_total 150000→159000.
			{signal: "llm_prompt_tokens_per_second", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: (318000 - 300000) / 45.0},
			{signal: "llm_generation_tokens_per_second", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: (159000 - 150000) / 45.0},
			// request_prompt_tokens_sum +18000, request_generation_tokens_sum +9000, _count +30.
			{signal: "llm_prompt_tokens_mean", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 18000 / 30.0},
			{signal: "llm_generation_tokens_mean", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 9000 / 30.0},
			{signal: "llm_engine_restarts", instance: "vllm-b:8000", model: "Qwen/Qwen2.5-7B-Instruct", value: 0},
		},

		// vllm-idle: up, but nothing finished in the window. Quantiles of
		// empty histograms are NaN; ratios and means are absent, not NaN;
		// rates are 0.
		[]want{{signal: "llm_instance_info", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 1}},
		q("llm_time_to_first_token_seconds", "vllm-idle:8000", "Qwen/Qwen2.5-0.5B-Instruct", math.NaN(), math.NaN(), math.NaN()),
		q("llm_inter_token_latency_seconds", "vllm-idle:8000", "Qwen/Qwen2.5-0.5B-Instruct", math.NaN(), math.NaN(), math.NaN()),
		q("llm_request_latency_seconds", "vllm-idle:8000", "Qwen/Qwen2.5-0.5B-Instruct", math.NaN(), math.NaN(), math.NaN()),
		q("llm_queue_time_seconds", "vllm-idle:8000", "Qwen/Qwen2.5-0.5B-Instruct", math.NaN(), math.NaN(), math.NaN()),
		q("llm_prefill_time_seconds", "vllm-idle:8000", "Qwen/Qwen2.5-0.5B-Instruct", math.NaN(), math.NaN(), math.NaN()),
		q("llm_decode_time_seconds", "vllm-idle:8000", "Qwen/Qwen2.5-0.5B-Instruct", math.NaN(), math.NaN(), math.NaN()),
		[]want{
			{signal: "llm_requests_running", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 0},
			{signal: "llm_requests_waiting", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 0},
			{signal: "llm_kv_cache_usage_ratio", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 0},
			{signal: "llm_preemptions_per_second", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 0},
			{signal: "llm_requests_per_second", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 0},
			{signal: "llm_prompt_tokens_per_second", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 0},
			{signal: "llm_generation_tokens_per_second", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 0},
			{signal: "llm_engine_restarts", instance: "vllm-idle:8000", model: "Qwen/Qwen2.5-0.5B-Instruct", value: 0},
		},
	),

	"sglang": rows(
		// sglang-a: newest collector, two DP ranks, priority split, cache_source split.
		[]want{{signal: "llm_instance_info", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: 1}},
		// TTFT: ≤0.2: 60, ≤0.4: 150, ≤0.6: 174, ≤0.8: 180.
		q("llm_time_to_first_token_seconds", "sglang-a:30000", "Qwen/Qwen3-8B",
			0.2+(0.4-0.2)*(0.5*180-60)/(150-60),
			0.4+(0.6-0.4)*(0.95*180-150)/(174-150),
			0.6+(0.8-0.6)*(0.99*180-174)/(180-174)),
		// ITL: ≤0.01: 0, ≤0.015: 1500, ≤0.02: 2400, ≤0.025: 3000 (the median sits on a bound).
		q("llm_inter_token_latency_seconds", "sglang-a:30000", "Qwen/Qwen3-8B",
			0.01+(0.015-0.01)*(0.5*3000-0)/(1500-0),
			0.02+(0.025-0.02)*(0.95*3000-2400)/(3000-2400),
			0.02+(0.025-0.02)*(0.99*3000-2400)/(3000-2400)),
		// e2e: ≤4: 0, ≤6: 60, ≤8: 150, ≤10: 180.
		q("llm_request_latency_seconds", "sglang-a:30000", "Qwen/Qwen3-8B",
			6+(8-6)*(0.5*180-60)/(150-60),
			8+(10-8)*(0.95*180-150)/(180-150),
			8+(10-8)*(0.99*180-150)/(180-150)),
		// queue, dp_rank 0 + 1: ≤0.05: 30+0, ≤0.1: 75+30 = 105, ≤0.2: 90+75 = 165, ≤0.5: 90+90 = 180.
		q("llm_queue_time_seconds", "sglang-a:30000", "Qwen/Qwen3-8B",
			0.05+(0.1-0.05)*(0.5*180-30)/(105-30),
			0.2+(0.5-0.2)*(0.95*180-165)/(180-165),
			0.2+(0.5-0.2)*(0.99*180-165)/(180-165)),
		[]want{
			// priority="" totals at +45 s, dp_rank 0 + 1 (the priority 0/1
			// splits would double it).
			{signal: "llm_requests_running", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: 30 + 26},
			// spec_accept_length at +45 s, the mean of ranks 1.3 and 1.7;
			// sglang-b reads 0 (speculative decoding off) and has none.
			{signal: "llm_spec_decode_acceptance_length_mean", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: (1.3 + 1.7) / 2},
			{signal: "llm_requests_waiting", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: 5 + 3},
			{signal: "llm_kv_cache_usage_ratio", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: 0.88}, // max(0.71, 0.88)
			{signal: "llm_kv_cache_capacity_tokens", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: 400000},
			// num_retracted_requests_total: 20→23, 10→13.
			{signal: "llm_preemptions_per_second", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: ((23 - 20) + (13 - 10)) / 45.0},
			// cached_tokens_total{cache_source="total"} 2000000→2036000 over
			// prompt_tokens_total 5000000→5090000 (device+host+total would double it).
			{signal: "llm_prefix_cache_hit_ratio", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: (2036000 - 2000000) / float64(5090000-5000000)},
			// num_requests_total 20000→20180.
			{signal: "llm_requests_per_second", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: (20180 - 20000) / 45.0},
			// num_aborted_requests_total 100→106.
			{signal: "llm_request_error_ratio", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: (106 - 100) / float64(20180-20000)},
			{signal: "llm_prompt_tokens_per_second", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: (5090000 - 5000000) / 45.0},
			// generation_tokens_total 2000000→2027000.
			{signal: "llm_generation_tokens_per_second", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: (2027000 - 2000000) / 45.0},
			{signal: "llm_prompt_tokens_mean", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: (5090000 - 5000000) / float64(20180-20000)},
			{signal: "llm_generation_tokens_mean", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: (2027000 - 2000000) / float64(20180-20000)},
			// Restarted after +30 s: num_requests_total 20120 → 60.
			{signal: "llm_engine_restarts", instance: "sglang-a:30000", model: "Qwen/Qwen3-8B", value: 1},
		},

		// sglang-b: 2025 collector, old ITL name, no queue histogram, no
		// retraction counter, no pool size: those catalogNames are absent.
		[]want{{signal: "llm_instance_info", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 1}},
		// TTFT: ≤0.1: 0, ≤0.25: 45, ≤0.5: 60.
		q("llm_time_to_first_token_seconds", "sglang-b:30000", "meta-llama/Llama-3.1-8B-Instruct",
			0.1+(0.25-0.1)*(0.5*60-0)/(45-0),
			0.25+(0.5-0.25)*(0.95*60-45)/(60-45),
			0.25+(0.5-0.25)*(0.99*60-45)/(60-45)),
		// time_per_output_token: ≤0.015: 0, ≤0.02: 1200, ≤0.025: 2400.
		q("llm_inter_token_latency_seconds", "sglang-b:30000", "meta-llama/Llama-3.1-8B-Instruct",
			0.015+(0.02-0.015)*(0.5*2400-0)/(1200-0),
			0.02+(0.025-0.02)*(0.95*2400-1200)/(2400-1200),
			0.02+(0.025-0.02)*(0.99*2400-1200)/(2400-1200)),
		// e2e: ≤5: 0, ≤10: 36, ≤15: 60.
		q("llm_request_latency_seconds", "sglang-b:30000", "meta-llama/Llama-3.1-8B-Instruct",
			5+(10-5)*(0.5*60-0)/(36-0),
			10+(15-10)*(0.95*60-36)/(60-36),
			10+(15-10)*(0.99*60-36)/(60-36)),
		[]want{
			{signal: "llm_requests_running", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 14},
			{signal: "llm_requests_waiting", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 0},
			{signal: "llm_kv_cache_usage_ratio", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 0.33},
			// cached_tokens_total (no cache_source) 100000→103000 over prompt_tokens_total 1000000→1015000.
			{signal: "llm_prefix_cache_hit_ratio", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (103000 - 100000) / float64(1015000-1000000)},
			// num_requests_total 5000→5060.
			{signal: "llm_requests_per_second", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (5060 - 5000) / 45.0},
			// num_aborted_requests_total stays at 10.
			{signal: "llm_request_error_ratio", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 0},
			{signal: "llm_prompt_tokens_per_second", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (1015000 - 1000000) / 45.0},
			// generation_tokens_total 800000→812000.
			{signal: "llm_generation_tokens_per_second", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (812000 - 800000) / 45.0},
			{signal: "llm_prompt_tokens_mean", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (1015000 - 1000000) / float64(5060-5000)},
			{signal: "llm_generation_tokens_mean", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: (812000 - 800000) / float64(5060-5000)},
			{signal: "llm_engine_restarts", instance: "sglang-b:30000", model: "meta-llama/Llama-3.1-8B-Instruct", value: 0},
		},

		// sglang-c: v0.3, the model labelled `name`, num_requests_running
		// and num_requests_waiting; no request counter (finished requests
		// are the e2e histogram's count), no abort counter, no cached
		// tokens, no queue histogram: no error ratio, token means, prefix
		// hit ratio, queue time or preemptions.
		[]want{{signal: "llm_instance_info", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 1}},
		// TTFT: ≤0.1: 0, ≤0.25: 30, ≤0.5: 48 (all).
		q("llm_time_to_first_token_seconds", "sglang-c:30000", "google/gemma-2-9b-it",
			0.1+(0.25-0.1)*(0.5*48-0)/(30-0),
			0.25+(0.5-0.25)*(0.95*48-30)/(48-30),
			0.25+(0.5-0.25)*(0.99*48-30)/(48-30)),
		// time_per_output_token: ≤0.02: 0, ≤0.025: 600, ≤0.03: 1200 (all).
		q("llm_inter_token_latency_seconds", "sglang-c:30000", "google/gemma-2-9b-it",
			0.02+(0.025-0.02)*(0.5*1200-0)/(600-0),
			0.025+(0.03-0.025)*(0.95*1200-600)/(1200-600),
			0.025+(0.03-0.025)*(0.99*1200-600)/(1200-600)),
		// e2e: ≤5: 0, ≤10: 30, ≤20: 48 (all).
		q("llm_request_latency_seconds", "sglang-c:30000", "google/gemma-2-9b-it",
			5+(10-5)*(0.5*48-0)/(30-0),
			10+(20-10)*(0.95*48-30)/(48-30),
			10+(20-10)*(0.99*48-30)/(48-30)),
		[]want{
			{signal: "llm_requests_running", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 9},
			{signal: "llm_requests_waiting", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 2},
			{signal: "llm_kv_cache_usage_ratio", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 0.42},
			{signal: "llm_kv_cache_capacity_tokens", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 161721},
			// e2e count: 16 per scrape.
			{signal: "llm_requests_per_second", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 48 / 45.0},
			{signal: "llm_prompt_tokens_per_second", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 9000 / 45.0},
			{signal: "llm_generation_tokens_per_second", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 4500 / 45.0},
			{signal: "llm_engine_restarts", instance: "sglang-c:30000", model: "google/gemma-2-9b-it", value: 0},
		},
	),

	"tgi": rows(
		// tgi-a: failures of two kinds.
		[]want{{signal: "llm_instance_info", instance: "tgi-a:80", value: 1}},
		// mean time per token: ≤dur12: 0, ≤dur13: 48, ≤dur14: 108.
		q("llm_inter_token_latency_seconds", "tgi-a:80", "",
			dur13+(dur14-dur13)*(0.5*108-48)/(108-48),
			dur13+(dur14-dur13)*(0.95*108-48)/(108-48),
			dur13+(dur14-dur13)*(0.99*108-48)/(108-48)),
		// request duration: ≤dur21: 0, ≤dur22: 36, ≤dur23: 90, ≤dur24: 108.
		q("llm_request_latency_seconds", "tgi-a:80", "",
			dur22+(dur23-dur22)*(0.5*108-36)/(90-36),
			dur23+(dur24-dur23)*(0.95*108-90)/(108-90),
			dur23+(dur24-dur23)*(0.99*108-90)/(108-90)),
		// queue duration: ≤dur9: 0, ≤dur10: 54, ≤dur11: 75, ≤dur12: 90, ≤dur13: 90, ≤dur14: 120.
		q("llm_queue_time_seconds", "tgi-a:80", "",
			dur10+(dur11-dur10)*(0.5*120-54)/(75-54),
			dur13+(dur14-dur13)*(0.95*120-90)/(120-90),
			dur13+(dur14-dur13)*(0.99*120-90)/(120-90)),
		[]want{
			// Means: duration _sum 2454.974695→2553.173683, then +49.099494
			// after the restart, over _count +108; queue 32.571737→33.874606,
			// +0.651435, over +120; inference +135 over +108.
			{signal: "llm_frontend_gap_seconds_mean", instance: "tgi-a:80", value: (2553.173683-2454.974695+49.099494)/108 - (33.874606-32.571737+0.651435)/120 - 135.0/108},
			{signal: "llm_frontend_gap_ratio", instance: "tgi-a:80",
				value: ((2553.173683-2454.974695+49.099494)/108 - (33.874606-32.571737+0.651435)/120 - 135.0/108) / ((2553.173683 - 2454.974695 + 49.099494) / 108)},
			{signal: "llm_requests_running", instance: "tgi-a:80", value: 12},                                   // tgi_batch_current_size
			{signal: "llm_requests_waiting", instance: "tgi-a:80", value: 6},                                    // tgi_queue_size
			{signal: "llm_kv_cache_usage_ratio", instance: "tgi-a:80", value: 30000 / 65536.0},                  // tgi_batch_current_max_tokens over the capacity
			{signal: "llm_kv_cache_capacity_tokens", instance: "tgi-a:80", value: 65536},                        // tgi_batch_max_total_tokens
			{signal: "llm_requests_per_second", instance: "tgi-a:80", value: (5008 - 4900) / 45.0},              // tgi_request_success
			{signal: "llm_request_error_ratio", instance: "tgi-a:80", value: ((63 - 60) + (49 - 40)) / 120.0},   // failure{validation, overloaded} over tgi_request_count 5000→5120
			{signal: "llm_prompt_tokens_per_second", instance: "tgi-a:80", value: (2043200 - 2000000) / 45.0},   // tgi_request_input_length_sum
			{signal: "llm_generation_tokens_per_second", instance: "tgi-a:80", value: (766200 - 750000) / 45.0}, // tgi_request_generated_tokens_sum
			{signal: "llm_prompt_tokens_mean", instance: "tgi-a:80", value: (2043200 - 2000000) / 108.0},        // _count +108
			{signal: "llm_generation_tokens_mean", instance: "tgi-a:80", value: (766200 - 750000) / 108.0},      // _count +108
			{signal: "llm_engine_restarts", instance: "tgi-a:80", value: 1},                                     // restarted after +30 s: tgi_request_count 5080 → 40
		},

		// tgi-b: no failure yet, so tgi_request_failure does not exist.
		[]want{{signal: "llm_instance_info", instance: "tgi-b:80", value: 1}},
		// mean time per token: ≤dur11: 0, ≤dur12: 12, ≤dur13: 30.
		q("llm_inter_token_latency_seconds", "tgi-b:80", "",
			dur12+(dur13-dur12)*(0.5*30-12)/(30-12),
			dur12+(dur13-dur12)*(0.95*30-12)/(30-12),
			dur12+(dur13-dur12)*(0.99*30-12)/(30-12)),
		// request duration: ≤dur19: 0, ≤dur20: 15, ≤dur21: 30 (the median sits on a bound).
		q("llm_request_latency_seconds", "tgi-b:80", "",
			dur20,
			dur20+(dur21-dur20)*(0.95*30-15)/(30-15),
			dur20+(dur21-dur20)*(0.99*30-15)/(30-15)),
		// queue duration: ≤dur4: 0, ≤dur5: 30.
		q("llm_queue_time_seconds", "tgi-b:80", "",
			dur4+(dur5-dur4)*0.5,
			dur4+(dur5-dur4)*0.95,
			dur4+(dur5-dur4)*0.99),
		[]want{
			// duration _sum 259.785682→275.372823, queue 0.474609→0.503086,
			// inference +14.7, 30 requests each.
			{signal: "llm_frontend_gap_seconds_mean", instance: "tgi-b:80", value: ((275.372823 - 259.785682) - (0.503086 - 0.474609) - 14.7) / 30},
			{signal: "llm_frontend_gap_ratio", instance: "tgi-b:80", value: ((275.372823 - 259.785682) - (0.503086 - 0.474609) - 14.7) / (275.372823 - 259.785682)},
			{signal: "llm_requests_running", instance: "tgi-b:80", value: 3},
			{signal: "llm_requests_waiting", instance: "tgi-b:80", value: 0},
			{signal: "llm_kv_cache_usage_ratio", instance: "tgi-b:80", value: 2400 / 16000.0},
			{signal: "llm_kv_cache_capacity_tokens", instance: "tgi-b:80", value: 16000},
			{signal: "llm_requests_per_second", instance: "tgi-b:80", value: (830 - 800) / 45.0},
			{signal: "llm_request_error_ratio", instance: "tgi-b:80", value: 0},
			{signal: "llm_prompt_tokens_per_second", instance: "tgi-b:80", value: (83000 - 80000) / 45.0},
			{signal: "llm_generation_tokens_per_second", instance: "tgi-b:80", value: (166000 - 160000) / 45.0},
			{signal: "llm_prompt_tokens_mean", instance: "tgi-b:80", value: (83000 - 80000) / 30.0},
			{signal: "llm_generation_tokens_mean", instance: "tgi-b:80", value: (166000 - 160000) / 30.0},
			{signal: "llm_engine_restarts", instance: "tgi-b:80", value: 0},
		},
	),

	"llamacpp": {
		// llamacpp-a: current build (no KV gauge).
		{signal: "llm_instance_info", instance: "llamacpp-a:8080", value: 1},
		{signal: "llm_requests_running", instance: "llamacpp-a:8080", value: 3},                              // requests_processing
		{signal: "llm_requests_waiting", instance: "llamacpp-a:8080", value: 2},                              // requests_deferred
		{signal: "llm_prompt_tokens_per_second", instance: "llamacpp-a:8080", value: (54500 - 50000) / 45.0}, // prompt_tokens_total
		{signal: "llm_generation_tokens_per_second", instance: "llamacpp-a:8080", value: (81800 - 80000) / 45.0},
		{signal: "llm_engine_restarts", instance: "llamacpp-a:8080", value: 0}, // n_decode_total only grows
		// llamacpp-b: 2024 build with kv_cache_usage_ratio.
		{signal: "llm_instance_info", instance: "llamacpp-b:8080", value: 1},
		{signal: "llm_requests_running", instance: "llamacpp-b:8080", value: 1},
		{signal: "llm_requests_waiting", instance: "llamacpp-b:8080", value: 0},
		{signal: "llm_kv_cache_usage_ratio", instance: "llamacpp-b:8080", value: 0.42},
		{signal: "llm_prompt_tokens_per_second", instance: "llamacpp-b:8080", value: (20900 - 20000) / 45.0},
		{signal: "llm_generation_tokens_per_second", instance: "llamacpp-b:8080", value: (10450 - 10000) / 45.0},
		{signal: "llm_engine_restarts", instance: "llamacpp-b:8080", value: 0},
	},

	"trtllm": rows(
		// trtllm-a: Triton 25.x with an ensemble around the engine model
		// tensorrt_llm (the ensemble, preprocessing and postprocessing
		// models have nv_inference_* series of their own, with other
		// values, which no rule may read), failures by reason, the
		// first-response histogram, waiting and fraction gauges; restarted
		// after +30 s.
		[]want{{signal: "llm_instance_info", instance: "trtllm-a:8002", model: "tensorrt_llm", value: 1}},
		// First response (ms) gained in the window: ≤100: 90, ≤500: 225,
		// ≤2000: 261, ≤5000: 270 (all).
		q("llm_time_to_first_token_seconds", "trtllm-a:8002", "tensorrt_llm",
			(100+(500-100)*(0.5*270-90)/(225-90))/1000,
			(500+(2000-500)*(0.95*270-225)/(261-225))/1000,
			(2000+(5000-2000)*(0.99*270-261)/(270-261))/1000),
		[]want{
			{signal: "llm_requests_running", instance: "trtllm-a:8002", model: "tensorrt_llm", value: 24},       // request_type="active"
			{signal: "llm_requests_waiting", instance: "trtllm-a:8002", model: "tensorrt_llm", value: 6},        // request_type="waiting"
			{signal: "llm_kv_cache_usage_ratio", instance: "trtllm-a:8002", model: "tensorrt_llm", value: 0.76}, // fraction, not used/max = 0.75
			{signal: "llm_kv_cache_capacity_tokens", instance: "trtllm-a:8002", model: "tensorrt_llm", value: 8000 * 64},
			// nv_inference_request_success of tensorrt_llm: +90 per scrape.
			{signal: "llm_requests_per_second", instance: "trtllm-a:8002", model: "tensorrt_llm", value: 270 / 45.0},
			// failures REJECTED +3 and CANCELED +1 per scrape.
			{signal: "llm_request_error_ratio", instance: "trtllm-a:8002", model: "tensorrt_llm", value: 12 / (270 + 12.0)},
			{signal: "llm_engine_restarts", instance: "trtllm-a:8002", model: "tensorrt_llm", value: 1},
		},
		// trtllm-b: Triton 23.11: no waiting or fraction gauge, no
		// histogram, failures without a reason label.
		[]want{
			{signal: "llm_instance_info", instance: "trtllm-b:8002", model: "tensorrt_llm", value: 1},
			{signal: "llm_requests_running", instance: "trtllm-b:8002", model: "tensorrt_llm", value: 8},
			{signal: "llm_kv_cache_usage_ratio", instance: "trtllm-b:8002", model: "tensorrt_llm", value: 1200 / 6239.0}, // used / max
			{signal: "llm_kv_cache_capacity_tokens", instance: "trtllm-b:8002", model: "tensorrt_llm", value: 6239 * 64},
			{signal: "llm_requests_per_second", instance: "trtllm-b:8002", model: "tensorrt_llm", value: 90 / 45.0},
			{signal: "llm_request_error_ratio", instance: "trtllm-b:8002", model: "tensorrt_llm", value: 0},
			{signal: "llm_engine_restarts", instance: "trtllm-b:8002", model: "tensorrt_llm", value: 0},
		},
	),
}

func TestProfileSignals(t *testing.T) {
	for _, p := range allProfiles {
		t.Run(p.engine, func(t *testing.T) {
			t.Parallel()
			opts := tsdb.DefaultOptions()
			db, err := tsdb.Open(t.TempDir(), nil, nil, opts, tsdb.NewDBStats())
			if err != nil {
				t.Fatalf("opening TSDB: %v", err)
			}
			t.Cleanup(func() {
				if err := db.Close(); err != nil {
					t.Errorf("closing TSDB: %v", err)
				}
			})
			loadFixtures(t, db, filepath.Join("testdata", p.engine), p.engine)
			got := evalProfile(t, p, db)

			// Identity labels: exactly {__name__, instance, engine, model}
			// (+ quantile); engines without a model label leave model out.
			for key, s := range got {
				var names []string
				s.Metric.Range(func(l labels.Label) { names = append(names, l.Name) })
				wantNames := []string{model.MetricNameLabel, "engine", "instance"}
				if p.hasModel {
					wantNames = append(wantNames, "model")
				}
				if catalogNames[s.Metric.Get(model.MetricNameLabel)] {
					wantNames = append(wantNames, "quantile")
				}
				sort.Strings(wantNames)
				if !slices.Equal(names, wantNames) {
					t.Errorf("%s: label names %v, want %v", key, names, wantNames)
				}
			}

			wants := expected[p.engine]
			if len(wants) == 0 {
				t.Fatalf("no expected values for %s", p.engine)
			}
			seen := map[string]bool{}
			for _, w := range wants {
				key := w.labels(p.engine).String()
				if seen[key] {
					t.Errorf("expected table lists %s twice", key)
				}
				seen[key] = true
				s, ok := got[key]
				if !ok {
					t.Errorf("missing %s (want %v)", key, w.value)
					continue
				}
				if !sameValue(s.F, w.value) {
					t.Errorf("%s = %v, want %v", key, s.F, w.value)
				}
			}
			for key, s := range got {
				if !seen[key] {
					t.Errorf("unexpected series %s = %v", key, s.F)
				}
			}
		})
	}
}

// TestCounterResets evaluates llm_engine_restarts at every scrape time: the -a
// instance of each engine restarted between +30 s and +45 s, so it has 1 at
// +45 s only; every other instance has 0 throughout, including a fresh one
// whose request counter does not exist yet.
func TestCounterResets(t *testing.T) {
	cases := []struct {
		engine, restarted string
		// fresh is the page of an instance that has served no request.
		fresh string
	}{
		{"vllm", "vllm-a:8000", "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 0.0\n"},
		{"sglang", "sglang-a:30000", "# TYPE sglang:num_running_reqs gauge\nsglang:num_running_reqs{model_name=\"m\",tp_rank=\"0\"} 0.0\n"},
		{"tgi", "tgi-a:80", "# TYPE tgi_queue_size gauge\ntgi_queue_size 0\n"},
		{"trtllm", "trtllm-a:8002", "# TYPE nv_trt_llm_general_metrics gauge\nnv_trt_llm_general_metrics{general_type=\"iteration_counter\",model=\"m\",version=\"1\"} 0\n"},
	}
	for _, c := range cases {
		t.Run(c.engine, func(t *testing.T) {
			i := slices.IndexFunc(allProfiles, func(p profile) bool { return p.engine == c.engine })
			p := allProfiles[i]
			db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), tsdb.NewDBStats())
			if err != nil {
				t.Fatalf("opening TSDB: %v", err)
			}
			t.Cleanup(func() { _ = db.Close() })
			loadFixtures(t, db, filepath.Join("testdata", c.engine), c.engine)
			fresh := filepath.Join(t.TempDir(), "fresh.prom")
			if err := os.WriteFile(fresh, []byte(c.fresh), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, sec := range []int{0, 15, 30, 45} {
				if err := appendExposition(db, fixture{path: fresh, instance: "fresh:9000", ts: firstScrape.Add(time.Duration(sec) * time.Second)}, c.engine); err != nil {
					t.Fatalf("loading the fresh instance: %v", err)
				}
			}

			for _, sec := range []int{0, 15, 30, 45} {
				vec := evalRecord(t, p, db, "llm_engine_restarts", firstScrape.Add(time.Duration(sec)*time.Second))
				got := map[string]float64{}
				for _, s := range vec {
					got[s.Metric.Get("instance")] = s.F
				}
				if _, ok := got["fresh:9000"]; !ok {
					t.Errorf("+%ds: no value for the instance without a request counter, want 0", sec)
				}
				for inst, v := range got {
					want := 0.0
					if inst == c.restarted && sec == 45 {
						want = 1
					}
					if v != want {
						t.Errorf("+%ds: %s = %v, want %v", sec, inst, v, want)
					}
				}
				if _, ok := got[c.restarted]; !ok {
					t.Errorf("+%ds: no value for %s", sec, c.restarted)
				}
			}
		})
	}
}

// TestPromtoolCheckRules checks that Prometheus' own tool accepts every
// profile: users run `promtool check rules` on their copies.
func TestPromtoolCheckRules(t *testing.T) {
	const promtool = "/usr/bin/promtool"
	if _, err := os.Stat(promtool); err != nil {
		t.Skipf("%s not available (%v); install Debian's prometheus package to run this test", promtool, err)
	}
	for _, p := range allProfiles {
		t.Run(p.engine, func(t *testing.T) {
			path := p.path
			if filepath.Dir(path) == "." {
				// Check the embedded bytes, which is what the collector loads.
				path = filepath.Join(t.TempDir(), p.path)
				if err := os.WriteFile(path, readProfile(t, p), 0o600); err != nil {
					t.Fatalf("writing %s: %v", path, err)
				}
			}
			out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool check rules %s: %v\n%s", p.path, err, out)
			}
			if !strings.Contains(string(out), "SUCCESS") {
				t.Errorf("promtool check rules %s: no SUCCESS in output:\n%s", p.path, out)
			}
		})
	}
}

// TestInstanceFromAnyCoreFamily: an instance is found from any one of its
// engine's core gauges, so a page that lacks the others (no running gauge,
// say) still lists the instance and yields the signals it has.
func TestInstanceFromAnyCoreFamily(t *testing.T) {
	for _, c := range []struct {
		engine, page, signal string
	}{
		{"vllm", "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n", "llm_kv_cache_usage_ratio"},
		{"vllm", "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.5\n", "llm_kv_cache_usage_ratio"},
		{"vllm", "vllm:num_requests_waiting{model_name=\"m\"} 3\n", "llm_requests_waiting"},
		{"sglang", "sglang:token_usage{model_name=\"m\"} 0.5\n", "llm_kv_cache_usage_ratio"},
		{"sglang", "sglang:num_queue_reqs{model_name=\"m\"} 3\n", "llm_requests_waiting"},
		{"sglang", "sglang:num_requests_waiting{name=\"m\"} 3\n", "llm_requests_waiting"},
		{"tgi", "tgi_batch_current_size 3\n", "llm_requests_running"},
		{"trtllm", "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\",model=\"m\",version=\"1\"} 0.5\n", "llm_kv_cache_usage_ratio"},
		{"trtllm", "nv_trt_llm_request_metrics{request_type=\"active\",model=\"m\",version=\"1\"} 3\n", "llm_requests_running"},
		{"llamacpp", "llamacpp:requests_deferred 2\n", "llm_requests_waiting"},
	} {
		t.Run(c.engine+" "+c.page, func(t *testing.T) {
			db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			page := filepath.Join(t.TempDir(), "page.prom")
			if err := os.WriteFile(page, []byte(c.page), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, sec := range []int{0, 15, 30, 45} {
				if err := appendExposition(db, fixture{path: page, instance: "x:1", ts: firstScrape.Add(time.Duration(sec) * time.Second)}, c.engine); err != nil {
					t.Fatal(err)
				}
			}
			var p profile
			for _, q := range allProfiles {
				if q.engine == c.engine {
					p = q
				}
			}
			for _, name := range []string{"llm_instance_info", c.signal, "llm_engine_restarts"} {
				if len(evalRecord(t, p, db, name, evalTime)) == 0 {
					t.Errorf("no %s from a page with only %s", name, strings.TrimSpace(c.page))
				}
			}
		})
	}
}

// evalRecord evaluates the rules of p that record name at the time at.
func evalRecord(t *testing.T, p profile, db *tsdb.DB, name string, at time.Time) promql.Vector {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, Parser: newParser()})
	query := rules.EngineQueryFunc(engine, db)
	var out promql.Vector
	for _, r := range parseProfile(t, p).Groups[0].Rules {
		if r.Record != name {
			continue
		}
		vec, err := query(context.Background(), r.Expr, at)
		if err != nil {
			t.Fatalf("%s at %s: %v", name, at, err)
		}
		out = append(out, vec...)
	}
	return out
}
