package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signalstore"
)

// builtinRenames are the renames of the built-in profiles' queries as
// written (classic histograms, as the test stores hold them), with the
// relabelling rules the scrape would apply.
func builtinRenames(t testing.TB, extra ...*Profile) (*renames, []*relabel.Config, []parser.Expr) {
	t.Helper()
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	queries, err := profileQueries(append(profs, extra...))
	if err != nil {
		t.Fatal(err)
	}
	r := renamesOf(queries)
	if r == nil {
		t.Fatal("the built-in profiles rename nothing at scrape time")
	}
	scfg, err := scrapeConfig(config.Default().Global, "", r.relabelConfigs(), false)
	if err != nil {
		t.Fatal(err)
	}
	return r, scfg.MetricRelabel, queries
}

func TestRenamesOf(t *testing.T) {
	r, _, _ := builtinRenames(t)
	for name, want := range map[string]string{
		"vllm:num_requests_running":                 "model_name (.*)",
		"vllm:time_to_first_token_seconds_bucket":   "model_name (.*)",
		"sglang:num_running_reqs":                   "name (.+), model_name (.+)",
		"sglang:time_to_first_token_seconds_bucket": "name (.+), model_name (.+)",
		// Read as it is, by the settings query: no `model` may appear.
		"vllm:cache_config_info":      "",
		"sglang:max_total_num_tokens": "",
		"tgi_request_count":           "",
	} {
		var got []string
		for _, s := range r.chain[name] {
			got = append(got, s.source+" "+s.regex)
		}
		if strings.Join(got, ", ") != want {
			t.Errorf("%s: renamed by %q, want %q", name, strings.Join(got, ", "), want)
		}
	}

	// A user's profile that reads a renamed family as it is takes that
	// family out: its query must see the series as scraped.
	user := mustProfile(t, "user.yml", "groups:\n  - name: mine\n    rules:\n      - record: llm_instance_info\n        expr: group by (instance, model_name) (vllm:num_requests_running)\n        labels: {engine: mine}\n")
	r, _, _ = builtinRenames(t, user)
	if _, ok := r.chain["vllm:num_requests_running"]; ok {
		t.Error("vllm:num_requests_running is renamed although a profile reads it without label_replace")
	}
	if _, ok := r.chain["vllm:num_requests_waiting"]; !ok {
		t.Error("vllm:num_requests_waiting is no longer renamed; only the family read as it is should be left")
	}
}

func TestRenameRemovesOnlyTheExactCalls(t *testing.T) {
	r := &renames{chain: map[string][]renameStep{
		"a": {{"model_name", "(.*)"}},
		"b": {{"model_name", "(.*)"}},
		"c": {{"name", "(.+)"}, {"model_name", "(.+)"}},
	}}
	for _, tc := range []struct{ in, want string }{
		{`sum by (instance, model) (label_replace(rate(a[1m]), "model", "$1", "model_name", "(.*)"))`, `sum by (instance, model) (rate(a[1m]))`},
		{`label_replace(a / b, "model", "$1", "model_name", "(.*)")`, `a / b`},
		{`label_replace(label_replace(rate(c[1m]), "model", "$1", "name", "(.+)"), "model", "$1", "model_name", "(.+)")`, `rate(c[1m])`},
		// Not the exact pattern, or not the chain the scrape applies.
		{`label_replace(a, "model", "$1", "model_name", "(.+)")`, ``},
		{`label_replace(a, "model", "x$1", "model_name", "(.*)")`, ``},
		{`label_replace(a, "served", "$1", "model_name", "(.*)")`, ``},
		{`label_replace(rate(c[1m]), "model", "$1", "model_name", "(.+)")`, ``},
		// A name the scrape does not rename, or not known in advance.
		{`label_replace(a + d, "model", "$1", "model_name", "(.*)")`, ``},
		{`label_replace({__name__=~"a.*"}, "model", "$1", "model_name", "(.*)")`, ``},
		// Arguments in which renaming before or after differs.
		{`label_replace(sum by (model_name) (a), "model", "$1", "model_name", "(.*)")`, ``},
		{`label_replace(a{model="x"}, "model", "$1", "model_name", "(.*)")`, ``},
		{`label_replace(a / on (instance) b, "model", "$1", "model_name", "(.*)")`, ``},
		{`label_replace(label_replace(a, "x", "$1", "model", "(.*)"), "model", "$1", "model_name", "(.*)")`, ``},
	} {
		e, err := NewParser().ParseExpr(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.want
		if want == "" {
			want = e.String()
		}
		if got := r.remove(e).String(); got != want {
			t.Errorf("%s\n got  %s\n want %s", tc.in, got, want)
		}
	}
}

// relabelAppender applies metric relabelling rules to what it appends, as
// a scrape does.
type relabelAppender struct {
	storage.Appender
	rules []*relabel.Config
}

func (a relabelAppender) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	lb := labels.NewBuilder(l)
	if !relabel.ProcessBuilder(lb, a.rules...) {
		return ref, nil
	}
	return a.Appender.Append(ref, lb.Labels(), t, v)
}

// fixtureTemplates are the fixture pages of engines (every engine's when
// none is named): per server, its page at +0, +15, +30 and +45 s.
func fixtureTemplates(t testing.TB, engines ...string) [][]string {
	t.Helper()
	if len(engines) == 0 {
		engines = []string{"vllm", "sglang", "tgi", "trtllm", "llamacpp"}
	}
	var templates [][]string
	for _, engine := range engines {
		firsts, _ := filepath.Glob(filepath.Join("profiles", "testdata", engine, "*_t00.prom"))
		if len(firsts) == 0 {
			t.Fatalf("no %s fixtures", engine)
		}
		sort.Strings(firsts)
		for _, f := range firsts {
			var scrapes []string
			for _, suffix := range []string{"_t00", "_t15", "_t30", "_t45"} {
				data, err := os.ReadFile(strings.Replace(f, "_t00", suffix, 1))
				if err != nil {
					t.Fatal(err)
				}
				scrapes = append(scrapes, string(data))
			}
			templates = append(templates, scrapes)
		}
	}
	return templates
}

// loadFixtureFleet fills a store with n instances of the engine fixtures,
// four scrapes 15 s apart, relabelled by rules.
func loadFixtureFleet(t testing.TB, store *signalstore.Store, n int, rules []*relabel.Config) {
	t.Helper()
	templates := fixtureTemplates(t)
	for i := range n {
		tpl := templates[i%len(templates)]
		target := labels.FromStrings("instance", fmt.Sprintf("10.0.%d.%d:8000", i/250, i%250), "job", "test")
		for j, text := range tpl {
			app := relabelAppender{Appender: store.Appender(context.Background()), rules: rules}
			if err := AppendExposition(app, []byte(text), t0.Add(time.Duration(j)*15*time.Second), target); err != nil {
				t.Fatal(err)
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// renamedSource answers as the embedded source does: over relabelled
// series, with the rename calls removed.
type renamedSource struct {
	*signalstore.Store
	q *renameQueries
}

func (s renamedSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	return s.Store.Query(ctx, s.q.rewrite(expr), ts)
}

func vectorText(v promql.Vector) []string {
	out := make([]string, len(v))
	for i, s := range v {
		f := fmt.Sprint(s.F)
		if value.IsStaleNaN(s.F) {
			f = "stale"
		}
		out[i] = s.Metric.String() + " " + f
	}
	slices.Sort(out)
	return out
}

// TestRenamedQueriesAnswerAlike checks every query of the built-in
// profiles, and every signal of a cycle, over the fixtures of every
// engine: as written over the series as exposed, and without the rename
// calls over the series relabelled at scrape time.
func TestRenamedQueriesAnswerAlike(t *testing.T) {
	r, rules, queries := builtinRenames(t)
	const n = 20
	plain, relabelled := openTestStore(t), openTestStore(t)
	loadFixtureFleet(t, plain, n, nil)
	loadFixtureFleet(t, relabelled, n, rules)
	src := renamedSource{Store: relabelled, q: &renameQueries{renames: r}}
	ctx := context.Background()
	at := t0.Add(45 * time.Second)
	removed := 0
	for _, q := range queries {
		written := q.String()
		rewritten := src.q.rewrite(written)
		removed += strings.Count(written, "label_replace") - strings.Count(rewritten, "label_replace")
		// The SGLang settings query reads this family as scraped.
		if strings.Contains(rewritten, "label_replace") && !strings.Contains(rewritten, "sglang:max_total_num_tokens") {
			t.Errorf("a rename call is left in %s", rewritten)
		}
		want, err := plain.Query(ctx, written, at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := src.Query(ctx, written, at)
		if err != nil {
			t.Fatal(err)
		}
		if w, g := vectorText(want), vectorText(got); !slices.Equal(w, g) {
			t.Errorf("%s\n as written: %v\n renamed:    %v", written, w, g)
		}
	}
	if removed < 130 {
		t.Errorf("only %d rename calls removed; the vLLM and SGLang profiles have 141", removed)
	}

	profs, _ := LoadProfiles(profiles.FS, ".", nil)
	want, got := collectAt(t, plain, profs, 45*time.Second), collectAt(t, src, profs, 45*time.Second)
	if len(want.Samples) < 10*n {
		t.Fatalf("only %d signal series; the fixtures should give many more", len(want.Samples))
	}
	text := func(s *Snapshot) []string {
		var out []string
		for _, x := range s.Samples {
			out = append(out, fmt.Sprintf("%s %v", x.Labels, x.Value))
		}
		return out
	}
	if w, g := text(want), text(got); !slices.Equal(w, g) {
		t.Errorf("signals differ:\n as written: %v\n renamed:    %v", w, g)
	}
}

// appendNative appends a text exposition as the embedded scrape stores
// it: classic histograms as native ones, relabelled by rules.
func appendNative(t testing.TB, store *signalstore.Store, text string, ts time.Time, target labels.Labels, rules []*relabel.Config) {
	t.Helper()
	st := labels.NewSymbolTable()
	p := textparse.NewNHCBParser(textparse.NewPromParser([]byte(text), st, false), st, false, false)
	app := store.Appender(context.Background())
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e != textparse.EntrySeries && e != textparse.EntryHistogram {
			continue
		}
		var l labels.Labels
		p.Labels(&l)
		lb := labels.NewBuilder(l)
		target.Range(func(t labels.Label) { lb.Set(t.Name, t.Value) })
		if !relabel.ProcessBuilder(lb, rules...) {
			continue
		}
		if e == textparse.EntryHistogram {
			_, _, h, fh := p.Histogram()
			_, err = app.AppendHistogram(0, lb.Labels(), ts.UnixMilli(), h, fh)
		} else {
			_, _, v := p.Series()
			_, err = app.Append(0, lb.Labels(), ts.UnixMilli(), v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRenamedQueries evaluates every built-in profile query once per
// iteration, as the embedded source sends it (over native histograms),
// over a store of 1000 instances of the engine fixtures relabelled at
// scrape time: with the rename calls (rewrite=false) and without them
// (rewrite=true).
func BenchmarkRenamedQueries(b *testing.B) {
	src, profs := nativeFleet(b, 1000)
	queries, _, _ := embeddedQueries(profs)
	store, q := src.store, src.renamed
	ctx := context.Background()
	at := t0.Add(45 * time.Second)
	for _, rewrite := range []bool{false, true} {
		exprs := make([]string, len(queries))
		for i, e := range queries {
			exprs[i] = e.String()
			if rewrite {
				exprs[i] = q.rewrite(exprs[i])
			}
		}
		b.Run(fmt.Sprintf("rewrite=%v", rewrite), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, e := range exprs {
					if _, err := store.Query(ctx, e, at); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestRenameComposesWithNativeHistograms sends every query of the
// built-in profiles and of a user's profile as the embedded source sends
// it (rewritten for native histograms, then without the rename calls) to
// native histograms relabelled at scrape time, and checks it against the
// native form alone over native histograms as exposed. The user's profile
// reads two families the built-in profiles rename with calls the scrape
// cannot stand in for; those must stay as written and the families must
// not be relabelled.
func TestRenameComposesWithNativeHistograms(t *testing.T) {
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	const (
		otherRegex  = `label_replace(vllm:num_requests_waiting, "model", "$1", "model_name", "(.+)")`
		otherTarget = `label_replace(rate(vllm:prompt_tokens_total[1m]), "served", "$1", "model_name", "(.*)")`
	)
	user := mustProfile(t, "user.yml", "groups:\n  - name: mine\n    rules:\n"+
		"      - record: llm_instance_info\n        expr: group by (instance, model) ("+otherRegex+")\n        labels: {engine: mine}\n"+
		"      - record: llm_prompt_tokens_per_second\n        expr: sum by (instance, served) ("+otherTarget+")\n        labels: {engine: mine}\n")
	profs = append(profs, user)
	queries, native, classic := embeddedQueries(profs)
	if native == nil {
		t.Fatal(classic)
	}
	r := renamesOf(queries)
	if r == nil {
		t.Fatal("nothing renamed at scrape time")
	}
	for _, name := range []string{"vllm:num_requests_waiting", "vllm:prompt_tokens_total"} {
		if _, ok := r.chain[name]; ok {
			t.Errorf("%s is relabelled although the user's profile reads it with a call of another form", name)
		}
	}
	scfg, err := scrapeConfig(config.Default().Global, "", r.relabelConfigs(), true)
	if err != nil {
		t.Fatal(err)
	}
	rules := scfg.MetricRelabel
	plain, relabelled := openTestStore(t), openTestStore(t)
	templates := fixtureTemplates(t)
	for i := range 2 * len(templates) {
		target := labels.FromStrings("instance", fmt.Sprintf("10.0.0.%d:8000", i), "job", ScrapeJobName)
		for j, text := range templates[i%len(templates)] {
			ts := t0.Add(time.Duration(j) * 15 * time.Second)
			appendNative(t, plain, text, ts, target, nil)
			appendNative(t, relabelled, text, ts, target, rules)
		}
	}
	e := &EmbeddedSource{native: native, renamed: &renameQueries{renames: r}}
	written, err := profileQueries(profs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := t0.Add(45 * time.Second)
	removed, answered := 0, 0
	for _, q := range written {
		expr := q.String()
		nativeOnly := native.rewrite(expr)
		sent := e.stored(expr)
		removed += strings.Count(nativeOnly, "label_replace") - strings.Count(sent, "label_replace")
		want, err := plain.Query(ctx, nativeOnly, at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := relabelled.Query(ctx, sent, at)
		if err != nil {
			t.Fatal(err)
		}
		if w, g := vectorText(want), vectorText(got); !slices.Equal(w, g) {
			t.Errorf("%s\n native only:    %v\n native renamed: %v", expr, w, g)
		}
		if len(want) > 0 {
			answered++
		}
	}
	for _, call := range []string{otherRegex, otherTarget} {
		if sent := e.stored(call); sent != call {
			t.Errorf("the embedded source sends %s for %s", sent, call)
		}
	}
	if removed < 100 {
		t.Errorf("only %d rename calls removed from the native queries", removed)
	}
	if answered < len(written)/2 {
		t.Errorf("only %d of %d queries answered anything; the comparison shows little", answered, len(written))
	}
}
