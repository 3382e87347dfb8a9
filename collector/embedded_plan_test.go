package collector

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/shard"
)

// nativeFleet is an embedded source over n instances of the engine
// fixtures, stored as its scrape stores them (native histograms,
// model_name renamed), with the built-in profiles.
func nativeFleet(t testing.TB, n int) (*EmbeddedSource, []*Profile) {
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
	store := openTestStore(t)
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
	collect := func(s Source) *Snapshot {
		c := New(Options{Metrics: testMetrics()})
		if err := c.ApplyConfig(config.Default(), s, profs); err != nil {
			t.Fatal(err)
		}
		snap, err := c.Collect(context.Background(), t0.Add(45*time.Second), CollectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	shared, each := collect(src), collect(unplanned{src})
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
// each subexpression the queries repeat computed once.
func BenchmarkEmbeddedCollection(b *testing.B) {
	src, profs := nativeFleet(b, 1000)
	for _, tc := range []struct {
		name string
		src  Source
	}{
		{"plan=each-rule", unplanned{src}},
		{"plan=shared-quantiles", ownReads{src}},
		{"plan=shared-quantiles,shared-reads", readsOnly{src}},
		{"plan=shared-quantiles,shared-reads,shared-subexpressions", src},
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
