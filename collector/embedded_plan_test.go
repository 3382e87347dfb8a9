package collector

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signalstore"
)

// nativeFleet is an embedded source over n instances of the engine
// fixtures, stored as its scrape stores them (native histograms,
// model_name renamed), with the built-in profiles.
func nativeFleet(t testing.TB, n int) (*EmbeddedSource, []*Profile) {
	t.Helper()
	return nativeFleetIn(t, openTestStore(t), n)
}

// nativeFleetIn is nativeFleet in store.
func nativeFleetIn(t testing.TB, store *signalstore.Store, n int) (*EmbeddedSource, []*Profile) {
	t.Helper()
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	queries, native, classic := embeddedQueries(profs)
	if native == nil {
		t.Fatal(classic)
	}
	r := renamesOf(queries)
	scfg, err := scrapeConfig(config.Default().Global, "", r.relabelConfigs(), true)
	if err != nil {
		t.Fatal(err)
	}
	rules := scfg.MetricRelabel
	templates := fixtureTemplates(t)
	for i := range n {
		target := labels.FromStrings("instance", fmt.Sprintf("10.0.%d.%d:8000", i/250, i%250), "job", ScrapeJobName)
		for j, text := range templates[i%len(templates)] {
			appendNative(t, store, text, t0.Add(time.Duration(j)*15*time.Second), target, rules)
		}
	}
	src, err := NewEmbeddedSource(store, nil, testMetrics(), nil, shard.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	src.native, src.renamed = native, &renameQueries{renames: r}
	return src, profs
}

// unplanned is a source whose plan is the zero one: every rule's query
// sent as written.
type unplanned struct{ Source }

func TestEmbeddedQuantilesShareOneFetch(t *testing.T) {
	src, profs := nativeFleet(t, 2*len(fixtureTemplates(t)))
	shared, each := collectAt(t, src, profs, 45*time.Second), collectAt(t, unplanned{src}, profs, 45*time.Second)
	if shared.Queries >= each.Queries {
		t.Errorf("%d queries with shared quantiles, %d without", shared.Queries, each.Queries)
	}
	quantiles := 0
	if len(shared.Samples) != len(each.Samples) {
		t.Fatalf("%d signals with shared quantiles, %d without", len(shared.Samples), len(each.Samples))
	}
	for i, w := range each.Samples {
		g := shared.Samples[i]
		same := g.Value == w.Value || math.IsNaN(g.Value) && math.IsNaN(w.Value)
		if !labels.Equal(g.Labels, w.Labels) || !same {
			t.Errorf("%s = %g shared, %s = %g each", g.Labels, g.Value, w.Labels, w.Value)
		}
		if w.Labels.Has("quantile") && !math.IsNaN(w.Value) {
			quantiles++
		}
	}
	if quantiles < 20 {
		t.Errorf("only %d quantiles compared; the fixtures should give many more", quantiles)
	}
	t.Logf("%d queries instead of %d; %d quantiles compared", shared.Queries, each.Queries, quantiles)
}

// ownReads is a source with the plan of the one it wraps whose queries
// do not share their reads.
type ownReads struct{ Source }

func (o ownReads) queryPlan() queryPlan { return planOf(o.Source) }

// readsOnly is an embedded source whose queries share their reads but
// compute every subexpression they repeat.
type readsOnly struct{ *EmbeddedSource }

func (r readsOnly) readingOnce([]string) Source { return r.EmbeddedSource.readingOnce(nil) }

// BenchmarkEmbeddedCollection is one collection over 1000 instances stored
// as the embedded scrape stores them: with each rule's query sent as
// written (the baseline), with a histogram's quantiles computed from one
// fetch of their argument, with that and the queries sharing their reads
// of the samples, and, as the embedded source collects, with those and
// each subexpression the queries repeat computed once. These four ask the
// PromQL engine; the fifth is the last with the store answering what it
// can directly (internal/instantql), as the agent's store does.
func BenchmarkEmbeddedCollection(b *testing.B) {
	src, profs := nativeFleetIn(b, openStore(b, signalstore.Options{EngineOnly: true}), 1000)
	direct, _ := nativeFleet(b, 1000)
	for _, tc := range []struct {
		name string
		src  Source
	}{
		{"plan=each-rule", unplanned{src}},
		{"plan=shared-quantiles", ownReads{src}},
		{"plan=shared-quantiles,shared-reads", readsOnly{src}},
		{"plan=shared-quantiles,shared-reads,shared-subexpressions", src},
		{"plan=shared-quantiles,shared-reads,shared-subexpressions,direct", direct},
	} {
		c := New(Options{Metrics: testMetrics()})
		if err := c.ApplyConfig(config.Default(), tc.src, profs); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			var snap *Snapshot
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if snap, err = c.Collect(context.Background(), t0.Add(45*time.Second), CollectOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(snap.Queries), "queries/cycle")
		})
	}
}

// TestDirectEvaluationAgrees collects the same fleets from two stores,
// one answering what it can directly (internal/instantql) and one with
// the engine alone, and compares the signals bit for bit: the embedded
// fleet as its scrape stores it, and a fleet of classic histograms
// queried as a remote source is, with and without shared quantiles.
func TestDirectEvaluationAgrees(t *testing.T) {
	reg := prometheus.NewRegistry()
	direct := openStore(t, signalstore.Options{Registerer: reg})
	engineOnly := openStore(t, signalstore.Options{EngineOnly: true})
	counted := func(evaluator string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "perfagent_store_instant_queries_total" && m.GetLabel()[0].GetValue() == evaluator {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	n := 2 * len(fixtureTemplates(t))
	got, profs := nativeFleetIn(t, direct, n)
	want, _ := nativeFleetIn(t, engineOnly, n)
	for _, at := range []time.Duration{30 * time.Second, 45 * time.Second, 4 * time.Minute} {
		compareSnapshots(t, fmt.Sprintf("embedded at %s", at), collectAt(t, got, profs, at), collectAt(t, want, profs, at))
	}
	d, e := counted("direct"), counted("engine")
	t.Logf("embedded: %v queries answered directly, %v by the engine", d, e)
	if d < 4*e {
		t.Errorf("%v queries answered directly, %v by the engine: want at least four fifths directly", d, e)
	}

	loadFleet(t, direct, 24)
	loadFleet(t, engineOnly, 24)
	for _, plan := range []queryPlan{{}, {sharedQuantiles: true}} {
		compareSnapshots(t, fmt.Sprintf("plan %+v", plan),
			collectAt(t, plannedSource{Source: direct, plan: plan}, profs, 45*time.Second),
			collectAt(t, plannedSource{Source: engineOnly, plan: plan}, profs, 45*time.Second))
	}
}

// collectAt collects from src with profs at t0+at, and fails t on any
// error.
func collectAt(t *testing.T, src Source, profs []*Profile, at time.Duration) *Snapshot {
	t.Helper()
	c := New(Options{Metrics: testMetrics()})
	if err := c.ApplyConfig(config.Default(), src, profs); err != nil {
		t.Fatal(err)
	}
	snap, err := c.Collect(context.Background(), t0.Add(at), CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func compareSnapshots(t *testing.T, what string, got, want *Snapshot) {
	t.Helper()
	if len(got.Samples) != len(want.Samples) || len(want.Samples) == 0 {
		t.Fatalf("%s: %d signals, want %d", what, len(got.Samples), len(want.Samples))
	}
	for i, w := range want.Samples {
		g := got.Samples[i]
		if !labels.Equal(g.Labels, w.Labels) || math.Float64bits(g.Value) != math.Float64bits(w.Value) {
			t.Errorf("%s: signal %d is %s %v, want %s %v", what, i, g.Labels, g.Value, w.Labels, w.Value)
		}
	}
}
