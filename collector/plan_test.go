package collector

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
)

// plannedSource is a source that asks for a given plan.
type plannedSource struct {
	Source
	plan queryPlan
}

func (s plannedSource) queryPlan() queryPlan { return s.plan }

// groupedBySource counts the expressions asked of s that group by
// model_name, as only a plan with groupBySource asks: the profiles group
// by model.
func (s *recordingSource) groupedBySource() int {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	n := 0
	for _, e := range s.exprs {
		if strings.Contains(e, "model_name, le)") {
			n++
		}
	}
	return n
}

// TestQueryPlansAgree collects one fleet with every plan and checks that
// the signals are the same, bit for bit, and that the shared plan asks
// fewer queries.
func TestQueryPlansAgree(t *testing.T) {
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	store := openTestStore(t)
	loadFleet(t, store, 24)
	collect := func(plan queryPlan) *Snapshot {
		t.Helper()
		snap, src := collectPlanned(t, store, profs, plan)
		// The shared arguments of vLLM's six latency histograms. (The
		// snapshot takes an instance's model from its instance rule, so
		// the model label as answered is compared by
		// TestBackfillPlansAgree.)
		if n := src.groupedBySource(); plan.groupBySource && n < 6 || !plan.groupBySource && n > 0 {
			t.Fatalf("plan %+v: %d queries grouped by model_name", plan, n)
		}
		return snap
	}
	want := collect(queryPlan{})
	if len(want.Instances) != 24 {
		t.Fatalf("got %d instances, want 24", len(want.Instances))
	}
	for _, plan := range []queryPlan{
		{sharedQuantiles: true},
		{concurrency: 3},
		{sharedQuantiles: true, concurrency: 4},
		{sharedQuantiles: true, concurrency: 4, groupBySource: true},
	} {
		got := collect(plan)
		if len(got.Samples) != len(want.Samples) {
			t.Fatalf("plan %+v: %d signals, want %d", plan, len(got.Samples), len(want.Samples))
		}
		for i := range want.Samples {
			w, g := want.Samples[i], got.Samples[i]
			if !labels.Equal(w.Labels, g.Labels) || w.Value != g.Value {
				t.Errorf("plan %+v: signal %d is %s %v, want %s %v", plan, i, g.Labels, g.Value, w.Labels, w.Value)
			}
		}
		switch {
		case plan.sharedQuantiles && got.Queries >= want.Queries:
			t.Errorf("plan %+v asked %d queries, want fewer than %d", plan, got.Queries, want.Queries)
		case !plan.sharedQuantiles && got.Queries != want.Queries:
			t.Errorf("plan %+v asked %d queries, want %d", plan, got.Queries, want.Queries)
		}
	}
}

// collectPlanned collects from src at t0+45s with plan, recording the
// queries, and fails t on any error.
func collectPlanned(t *testing.T, src Source, profs []*Profile, plan queryPlan) (*Snapshot, *recordingSource) {
	t.Helper()
	c := New(Options{Metrics: testMetrics()})
	rec := &recordingSource{Source: plannedSource{Source: src, plan: plan}}
	if err := c.ApplyConfig(config.Default(), rec, profs); err != nil {
		t.Fatal(err)
	}
	snap, err := c.Collect(context.Background(), t0.Add(45*time.Second), CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Errors) > 0 {
		t.Fatalf("rule errors: %v", snap.Errors)
	}
	return snap, rec
}

func TestPlanSteps(t *testing.T) {
	var rs []*rules.RecordingRule
	for _, expr := range []string{
		`histogram_quantile(0.5, sum by (instance, le) (rate(x_bucket[1m])))`,
		`histogram_quantile(0.5, sum by (instance, le) (rate(x_bucket[1m])))`,
		`sum by (instance) (rate(x_count[1m]))`,
		`(histogram_quantile(0.99, sum by (instance, le) (rate(x_bucket[1m]))))`,
		`histogram_quantile(0.9, sum by (instance, le) (rate(y_bucket[1m])))`,
	} {
		e, err := NewParser().ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, rules.NewRecordingRule("llm_test", e, labels.EmptyLabels()))
	}
	for _, tc := range []struct {
		shared bool
		want   [][]int
	}{
		{false, [][]int{{0}, {1}, {2}, {3}, {4}}},
		// The instance rule stays alone; a quantile with nobody to share
		// its argument is asked as written.
		{true, [][]int{{0}, {1, 3}, {2}, {4}}},
	} {
		steps := planSteps(rs, queryPlan{sharedQuantiles: tc.shared})
		if len(steps) != len(tc.want) {
			t.Fatalf("shared=%v: %d steps, want %d", tc.shared, len(steps), len(tc.want))
		}
		for k, s := range steps {
			if len(s.rules) != len(tc.want[k]) {
				t.Fatalf("shared=%v: step %d answers rules %v, want %v", tc.shared, k, s.rules, tc.want[k])
			}
			for n := range s.rules {
				if s.rules[n] != tc.want[k][n] {
					t.Errorf("shared=%v: step %d answers rules %v, want %v", tc.shared, k, s.rules, tc.want[k])
				}
			}
			if (s.shared != "") != (len(s.rules) > 1) {
				t.Errorf("shared=%v: step %d shares %q for %d rules", tc.shared, k, s.shared, len(s.rules))
			}
		}
	}
}

func TestHistogramQuantileSkipsBadBuckets(t *testing.T) {
	in := promql.Vector{
		{Metric: labels.FromStrings("instance", "a", "le", "1"), F: 5},
		{Metric: labels.FromStrings("instance", "a", "le", "+Inf"), F: 10},
		{Metric: labels.FromStrings("instance", "a", "le", "x"), F: 100},
		{Metric: labels.FromStrings("instance", "b"), F: 100},
	}
	got := histogramQuantile(0.5, in)
	if len(got) != 1 || !labels.Equal(got[0].Metric, labels.FromStrings("instance", "a")) || got[0].F != 1 {
		t.Fatalf("got %v, want {instance=\"a\"} 1", got)
	}
}

// TestBackfillPlansAgree backfills one fleet's history with each plan and
// checks that the stored history is the same.
func TestBackfillPlansAgree(t *testing.T) {
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	raw := openTestStore(t)
	loadFleet(t, raw, 12)
	ctx := context.Background()
	from, to, step := t0.Add(15*time.Second), t0.Add(45*time.Second), 5*time.Second
	history := func(plan queryPlan) promql.Matrix {
		t.Helper()
		local := openTestStore(t)
		c := New(Options{Metrics: testMetrics(), Store: local})
		src := &recordingSource{Source: plannedSource{Source: raw, plan: plan}}
		if err := c.ApplyConfig(config.Default(), src, profs); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Backfill(ctx, from, to, step); err != nil {
			t.Fatal(err)
		}
		if n := src.groupedBySource(); plan.groupBySource && n < 6 || !plan.groupBySource && n > 0 {
			t.Fatalf("plan %+v: %d range queries grouped by model_name", plan, n)
		}
		m, err := local.QueryRange(ctx, `{__name__=~"llm_.+"}`, from, to, step)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	want := history(queryPlan{})
	if len(want) == 0 {
		t.Fatal("nothing backfilled")
	}
	for _, plan := range []queryPlan{
		{sharedQuantiles: true, concurrency: 4},
		{sharedQuantiles: true, concurrency: 4, groupBySource: true},
	} {
		got := history(plan)
		if len(got) != len(want) {
			t.Fatalf("plan %+v backfilled %d series, want %d", plan, len(got), len(want))
		}
		for i := range want {
			if !labels.Equal(got[i].Metric, want[i].Metric) || !slices.Equal(got[i].Floats, want[i].Floats) {
				t.Errorf("plan %+v backfilled %s %v, want %s %v", plan, got[i].Metric, got[i].Floats, want[i].Metric, want[i].Floats)
			}
		}
	}
}

// countingSource records the most queries it had in flight at once.
type countingSource struct {
	plannedSource
	mu             sync.Mutex
	inFlight, most int
}

func (s *countingSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	s.mu.Lock()
	s.inFlight++
	s.most = max(s.most, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	// Long enough for the other queries of the cycle to pile up.
	time.Sleep(2 * time.Millisecond)
	return s.plannedSource.Query(ctx, expr, ts)
}

func TestQueryPlanBoundsConcurrency(t *testing.T) {
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	store := openTestStore(t)
	loadFleet(t, store, 6)
	for _, limit := range []int{1, 3} {
		src := &countingSource{plannedSource: plannedSource{Source: store, plan: queryPlan{sharedQuantiles: true, concurrency: limit}}}
		c := New(Options{Metrics: testMetrics()})
		if err := c.ApplyConfig(config.Default(), src, profs); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Collect(context.Background(), t0.Add(45*time.Second), CollectOptions{}); err != nil {
			t.Fatal(err)
		}
		if src.most != limit {
			t.Errorf("with a limit of %d, %d queries were in flight at most", limit, src.most)
		}
	}
}

func TestGroupBySource(t *testing.T) {
	for _, tc := range []struct {
		in, want, source string
	}{
		{
			in:     `sum by (instance, model, le) (label_replace(rate(x_bucket[1m]), "model", "$1", "model_name", "(.*)"))`,
			want:   `sum by (instance, model_name, le) (rate(x_bucket[1m]))`,
			source: "model_name",
		},
		{
			in: `sum by (instance, model, le) (label_replace(rate(a_bucket[1m]), "model", "$1", "model_name", "(.*)"))
				or on (instance, model)
				sum by (instance, model, le) (label_replace(rate(b_bucket[1m]), "model", "$1", "model_name", "(.*)"))`,
			want:   `sum by (instance, model_name, le) (rate(a_bucket[1m])) or on (instance, model_name) sum by (instance, model_name, le) (rate(b_bucket[1m]))`,
			source: "model_name",
		},
		{
			in:     `(max by (model, instance) ((label_replace(x, "model", "$1", "name", "(.*)"))))`,
			want:   `(max by (name, instance) (x))`,
			source: "name",
		},
		// Left as written:
		// (.+) keeps the series' own model when the source is empty;
		{in: `sum by (instance, model, le) (label_replace(rate(x_bucket[1m]), "model", "$1", "model_name", "(.+)"))`},
		// a chain gives one model to series that differ in its sources;
		{in: `sum by (instance, model) (label_replace(label_replace(x, "model", "$1", "name", "(.+)"), "model", "$1", "model_name", "(.+)"))`},
		// the groups must include model, and not the source as well;
		{in: `sum by (instance, le) (label_replace(rate(x_bucket[1m]), "model", "$1", "model_name", "(.*)"))`},
		{in: `sum by (instance, model, model_name) (label_replace(x, "model", "$1", "model_name", "(.*)"))`},
		{in: `sum without (le) (label_replace(x, "model", "$1", "model_name", "(.*)"))`},
		// an aggregation with a parameter, or a rename to another label;
		{in: `topk by (model) (1, label_replace(x, "model", "$1", "model_name", "(.*)"))`},
		{in: `sum by (family) (label_replace(x, "family", "$1", "model_name", "(.*)"))`},
		// an or whose sides rename different sources, or do not match on model.
		{in: `sum by (model) (label_replace(a, "model", "$1", "model_name", "(.*)")) or on (model) sum by (model) (label_replace(b, "model", "$1", "name", "(.*)"))`},
		{in: `sum by (model) (label_replace(a, "model", "$1", "model_name", "(.*)")) or sum by (model) (label_replace(b, "model", "$1", "model_name", "(.*)"))`},
	} {
		e, err := NewParser().ParseExpr(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		written := e.String()
		source, ok := groupBySource(e)
		if tc.source == "" {
			if ok || e.String() != written {
				t.Errorf("%s: rewritten to %s (source %q), want it as written", tc.in, e, source)
			}
			continue
		}
		if !ok || source != tc.source || e.String() != tc.want {
			t.Errorf("%s: rewritten to %s (source %q, %v), want %s (source %q)", tc.in, e, source, ok, tc.want, tc.source)
		}
	}
}

func TestAsModel(t *testing.T) {
	v := asModel(promql.Vector{
		{Metric: labels.FromStrings("instance", "a", "le", "1", "model_name", "m")},
		{Metric: labels.FromStrings("instance", "b", "le", "1")},
	}, "model_name")
	want := []labels.Labels{
		labels.FromStrings("instance", "a", "le", "1", "model", "m"),
		labels.FromStrings("instance", "b", "le", "1"),
	}
	for i := range want {
		if !labels.Equal(v[i].Metric, want[i]) {
			t.Errorf("sample %d: %s, want %s", i, v[i].Metric, want[i])
		}
	}
}
