package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.yaml.in/yaml/v3"
)

// UnitTest runs rule unit-test files in the format of `promtool test
// rules` (rule_files, evaluation_interval, group_eval_order, tests with
// input_series, alert_rule_test and promql_expr_test), writing a report
// like promtool's to out. Rule files go through the Loader, so perfagent's
// conventions hold in tests too; rule_files may name BuiltinFiles. It
// reports whether any test failed.
func UnitTest(files []string, out io.Writer) (failed bool) {
	for _, f := range files {
		fmt.Fprintln(out, "Unit Testing: ", f)
		if errs := unitTestFile(f); len(errs) > 0 {
			failed = true
			fmt.Fprintln(out, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(out, e.Error())
				fmt.Fprintln(out)
			}
			continue
		}
		fmt.Fprintln(out, "  SUCCESS")
		fmt.Fprintln(out)
	}
	return failed
}

// testFile is the content of one unit-test file.
type testFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval,omitempty"`
	GroupEvalOrder     []string       `yaml:"group_eval_order"`
	Tests              []testGroup    `yaml:"tests"`
}

// testGroup is a set of input series and the tests that read them.
type testGroup struct {
	Interval        model.Duration    `yaml:"interval"`
	InputSeries     []inputSeries     `yaml:"input_series"`
	AlertRuleTests  []alertTestCase   `yaml:"alert_rule_test,omitempty"`
	PromqlExprTests []promqlTestCase  `yaml:"promql_expr_test,omitempty"`
	ExternalLabels  map[string]string `yaml:"external_labels,omitempty"`
	ExternalURL     string            `yaml:"external_url,omitempty"`
	TestGroupName   string            `yaml:"name,omitempty"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []expAlert     `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type promqlTestCase struct {
	Expr       string         `yaml:"expr"`
	EvalTime   model.Duration `yaml:"eval_time"`
	ExpSamples []expSample    `yaml:"exp_samples"`
}

type expSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

func unitTestFile(name string) []error {
	b, err := os.ReadFile(name)
	if err != nil {
		return []error{fmt.Errorf("reading test file: %w", err)}
	}
	var tf testFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var errs []error
			for _, e := range te.Errors {
				errs = append(errs, lineError(name, e))
			}
			return errs
		}
		return []error{lineError(name, err.Error())}
	}
	ruleFiles, err := resolveRuleFiles(filepath.Dir(name), tf.RuleFiles)
	if err != nil {
		return []error{&PosError{File: name, Err: err}}
	}
	loaded, errs := NewLoader(LoaderOptions{}).Load(ruleFiles)
	if len(errs) > 0 {
		return errs
	}
	if tf.EvaluationInterval == 0 {
		tf.EvaluationInterval = model.Duration(time.Minute)
	}
	order := map[string]int{}
	for i, g := range tf.GroupEvalOrder {
		if _, ok := order[g]; ok {
			return []error{&PosError{File: name, Err: fmt.Errorf("group name repeated in evaluation order: %s", g)}}
		}
		order[g] = i
	}
	for i, tg := range tf.Tests {
		if tg.Interval == 0 {
			tg.Interval = tf.EvaluationInterval
		}
		testName := tg.TestGroupName
		if testName == "" {
			testName = "#" + strconv.Itoa(i)
		}
		for _, e := range tg.run(time.Duration(tf.EvaluationInterval), order, loaded) {
			errs = append(errs, fmt.Errorf("    test %s:\n%w", testName, e))
		}
	}
	return errs
}

// resolveRuleFiles makes rule_files relative to the test file and expands
// globs; built-in names stay as they are.
func resolveRuleFiles(dir string, files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		if isBuiltin(f) {
			out = append(out, f)
			continue
		}
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		m, err := filepath.Glob(f)
		if err != nil {
			return nil, fmt.Errorf("rule_files %q: %w", f, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("rule_files %q: no file matches", f)
		}
		out = append(out, m...)
	}
	return out, nil
}

// run evaluates the rules over the input series at every evaluation
// interval from 0 to the largest eval_time, compares the firing alerts at
// each alert test's eval_time, then runs the PromQL tests.
func (tg *testGroup) run(evalInterval time.Duration, order map[string]int, files []*RuleFile) (errs []error) {
	input, err := parseInputSeries(tg.InputSeries, time.Duration(tg.Interval))
	if err != nil {
		return []error{fmt.Errorf("input_series: %w", err)}
	}
	db, err := openScratchTSDB()
	if err != nil {
		return []error{err}
	}
	defer func() {
		if err := db.Close(); err != nil {
			errs = append(errs, err)
		}
	}()
	p := newParser()
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:               10000,
		Timeout:                  100 * time.Second,
		NoStepSubqueryIntervalFn: func(int64) int64 { return evalInterval.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   p,
	})
	defer func() {
		if err := engine.Close(); err != nil {
			errs = append(errs, err)
		}
	}()
	ctx := context.Background()

	opts := &promrules.ManagerOptions{
		QueryFunc:    promrules.EngineQueryFunc(engine, db),
		AppendableV2: db,
		Queryable:    db,
		Context:      ctx,
		NotifyFunc:   func(context.Context, string, ...*promrules.Alert) {},
		Logger:       slog.New(slog.DiscardHandler),
		Metrics:      promrules.NewGroupMetrics(nil),
		Parser:       p,
	}
	groups, static, err := buildGroups(files, time.Duration(tg.Interval), opts, true, labels.FromMap(tg.ExternalLabels), tg.ExternalURL, opts.Logger)
	if err != nil {
		return []error{err}
	}
	sort.SliceStable(groups, func(i, j int) bool { return order[groups[i].Name()] < order[groups[j].Name()] })

	byTime := map[model.Duration][]alertTestCase{}
	var times []model.Duration
	for _, a := range tg.AlertRuleTests {
		if a.Alertname == "" {
			return []error{fmt.Errorf("an alert_rule_test at eval_time %s has no alertname", a.EvalTime)}
		}
		if _, ok := byTime[a.EvalTime]; !ok {
			times = append(times, a.EvalTime)
		}
		byTime[a.EvalTime] = append(byTime[a.EvalTime], a)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })

	mint := time.Unix(0, 0).UTC()
	maxt := mint.Add(tg.maxEvalTime())
	next := 0
	for ts := mint; !ts.After(maxt); ts = ts.Add(evalInterval) {
		// Rules see only the samples up to the evaluation time, as they
		// would in a server scraping the series as it goes.
		if err := input.appendTill(ctx, db, ts.Sub(mint).Milliseconds()); err != nil {
			return append(errs, err)
		}
		var evalErrs []error
		for _, g := range groups {
			g.Eval(ctx, ts)
			for _, r := range g.Rules() {
				if r.LastError() != nil {
					evalErrs = append(evalErrs, fmt.Errorf("    rule: %s, time: %s, err: %w", r.Name(), model.Duration(ts.Sub(mint)), r.LastError()))
				}
			}
		}
		if len(evalErrs) > 0 {
			return append(errs, evalErrs...)
		}
		// Alert tests at eval times in [ts, ts+evalInterval) compare with
		// this evaluation.
		for next < len(times) && time.Duration(times[next]) < ts.Add(evalInterval).Sub(mint) {
			for _, tc := range byTime[times[next]] {
				if err := tc.compare(groups, static); err != nil {
					errs = append(errs, err)
				}
			}
			next++
		}
	}
	for _, tc := range tg.PromqlExprTests {
		if err := tc.compare(ctx, engine, db, p, mint); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// scratchTSDB is a TSDB in a temporary directory that Close removes.
type scratchTSDB struct {
	*tsdb.DB
	dir string
}

// openScratchTSDB opens an empty TSDB whose blocks span a day, so that
// a test's samples, appended in time order, all stay appendable.
func openScratchTSDB() (*scratchTSDB, error) {
	dir, err := os.MkdirTemp("", "perfagent-rules-test")
	if err != nil {
		return nil, fmt.Errorf("creating the test storage directory: %w", err)
	}
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = (24 * time.Hour).Milliseconds()
	opts.MaxBlockDuration = (24 * time.Hour).Milliseconds()
	opts.RetentionDuration = 0
	opts.OutOfOrderTimeWindow = 0
	db, err := tsdb.Open(dir, slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("opening the test storage: %w", err), os.RemoveAll(dir))
	}
	return &scratchTSDB{DB: db, dir: dir}, nil
}

// Close closes the TSDB and removes its directory.
func (s *scratchTSDB) Close() error {
	return errors.Join(s.DB.Close(), os.RemoveAll(s.dir))
}

// inputSamples are the samples of a test group's input series, in time
// order per series, not yet appended to storage.
type inputSamples struct {
	series  []labels.Labels
	pending [][]promql.Sample
}

// parseInputSeries expands each input series' values, in the notation of
// promtool's input_series, into samples interval apart from time 0. A
// series listed twice keeps its last values.
func parseInputSeries(in []inputSeries, interval time.Duration) (*inputSamples, error) {
	// promtool accepts UTF-8 metric and label names without quotes here.
	seriesParser := parser.NewParser(parser.Options{EnableUnquotedUTF8Names: true})
	out := &inputSamples{}
	index := map[uint64]int{}
	for i, s := range in {
		lset, vals, err := seriesParser.ParseSeriesDesc(s.Series + " " + s.Values)
		if err != nil {
			// Positions count lines as promtool does, from a "load" line
			// before the first series.
			parser.EnrichParseError(err, func(pe *parser.ParseErr) { pe.LineOffset = i + 1 })
			return nil, err
		}
		var samples []promql.Sample
		for j, v := range vals {
			if v.Omitted {
				continue
			}
			samples = append(samples, promql.Sample{T: (time.Duration(j) * interval).Milliseconds(), F: v.Value, H: v.Histogram})
		}
		h := lset.Hash()
		if k, ok := index[h]; ok {
			out.pending[k] = samples
			continue
		}
		index[h] = len(out.series)
		out.series = append(out.series, lset)
		out.pending = append(out.pending, samples)
	}
	return out, nil
}

// appendTill appends to db the pending samples at or before till, in
// milliseconds since time 0, and drops them from pending.
func (in *inputSamples) appendTill(ctx context.Context, db storage.AppendableV2, till int64) error {
	app := db.AppenderV2(ctx)
	for i, lset := range in.series {
		n := 0
		for _, s := range in.pending[i] {
			if s.T > till {
				break
			}
			if _, err := app.Append(0, lset, 0, s.T, s.F, nil, s.H, storage.AppendV2Options{}); err != nil {
				return errors.Join(fmt.Errorf("appending %s at %d: %w", lset, s.T, err), app.Rollback())
			}
			n++
		}
		in.pending[i] = in.pending[i][n:]
	}
	return app.Commit()
}

func (tg *testGroup) maxEvalTime() time.Duration {
	var m model.Duration
	for _, a := range tg.AlertRuleTests {
		m = max(m, a.EvalTime)
	}
	for _, e := range tg.PromqlExprTests {
		m = max(m, e.EvalTime)
	}
	return time.Duration(m)
}

// alertSet is a sortable list of alerts' labels and annotations.
type alertSet []labelsAndAnnotations

type labelsAndAnnotations struct {
	Labels      labels.Labels
	Annotations labels.Labels
}

func (s alertSet) sort() {
	sort.Slice(s, func(i, j int) bool {
		if c := labels.Compare(s[i].Labels, s[j].Labels); c != 0 {
			return c < 0
		}
		return labels.Compare(s[i].Annotations, s[j].Annotations) < 0
	})
}

func (s alertSet) equal(o alertSet) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if !labels.Equal(s[i].Labels, o[i].Labels) || !labels.Equal(s[i].Annotations, o[i].Annotations) {
			return false
		}
	}
	return true
}

// String lists the alerts as promtool's report does.
func (s alertSet) String() string {
	if len(s) == 0 {
		return "[]"
	}
	var b strings.Builder
	b.WriteString("[")
	for i, a := range s {
		fmt.Fprintf(&b, "\n            %d: Labels:%s\n               Annotations:%s", i, a.Labels, a.Annotations)
	}
	b.WriteString("\n        ]")
	return b.String()
}

// compare checks the firing alerts of tc.Alertname against the expected.
func (tc alertTestCase) compare(groups []*promrules.Group, static ruleStatics) error {
	var got alertSet
	for _, g := range groups {
		for _, ar := range g.AlertingRules() {
			if ar.Name() != tc.Alertname {
				continue
			}
			key := ruleKey(ar.Name(), ar.Query().String())
			for _, a := range ar.ActiveAlerts() {
				if a.State == promrules.StateFiring {
					got = append(got, labelsAndAnnotations{a.Labels.Copy(), static.merge(key, a.Annotations).Copy()})
				}
			}
		}
	}
	var exp alertSet
	for _, a := range tc.ExpAlerts {
		lb := labels.NewBuilder(labels.FromMap(a.ExpLabels))
		lb.Set(labels.AlertName, tc.Alertname)
		exp = append(exp, labelsAndAnnotations{lb.Labels(), labels.FromMap(a.ExpAnnotations)})
	}
	got.sort()
	exp.sort()
	if exp.equal(got) {
		return nil
	}
	return fmt.Errorf("    alertname: %s, time: %s,\n        exp:%s,\n        got:%s", tc.Alertname, tc.EvalTime, exp, got)
}

// compare runs tc's expression and checks its samples.
func (tc promqlTestCase) compare(ctx context.Context, engine *promql.Engine, q storage.Queryable, p parser.Parser, mint time.Time) error {
	fail := func(err error) error {
		return fmt.Errorf("    expr: %q, time: %s, err: %w", tc.Expr, tc.EvalTime, err)
	}
	query, err := engine.NewInstantQuery(ctx, q, nil, tc.Expr, mint.Add(time.Duration(tc.EvalTime)))
	if err != nil {
		return fail(err)
	}
	defer query.Close()
	res := query.Exec(ctx)
	if res.Err != nil {
		return fail(res.Err)
	}
	var got []promql.Sample
	switch v := res.Value.(type) {
	case promql.Vector:
		got = v
	case promql.Scalar:
		got = []promql.Sample{{Metric: labels.EmptyLabels(), F: v.V}}
	default:
		return fail(fmt.Errorf("result is a %s, not a vector or scalar", res.Value.Type()))
	}
	exp := make([]promql.Sample, 0, len(tc.ExpSamples))
	for _, s := range tc.ExpSamples {
		lset, err := p.ParseMetric(s.Labels)
		if err != nil {
			return fail(fmt.Errorf("labels %q: %w", s.Labels, err))
		}
		exp = append(exp, promql.Sample{Metric: lset, F: s.Value})
	}
	bySeries := func(v []promql.Sample) {
		sort.Slice(v, func(i, j int) bool { return labels.Compare(v[i].Metric, v[j].Metric) < 0 })
	}
	bySeries(got)
	bySeries(exp)
	same := len(got) == len(exp)
	for i := 0; same && i < len(got); i++ {
		same = labels.Equal(got[i].Metric, exp[i].Metric) &&
			(got[i].F == exp[i].F || (math.IsNaN(got[i].F) && math.IsNaN(exp[i].F)))
	}
	if same {
		return nil
	}
	return fmt.Errorf("    expr: %q, time: %s,\n        exp: %s\n        got: %s", tc.Expr, tc.EvalTime, samplesString(exp), samplesString(got))
}

func samplesString(v []promql.Sample) string {
	if len(v) == 0 {
		return "nil"
	}
	parts := make([]string, len(v))
	for i, s := range v {
		parts[i] = s.Metric.String() + " " + strconv.FormatFloat(s.F, 'E', -1, 64)
	}
	return strings.Join(parts, ", ")
}
