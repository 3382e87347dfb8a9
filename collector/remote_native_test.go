package collector

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signalstore"
)

// histogramForm is how a source holds one instance's histograms.
type histogramForm int

const (
	classicOnly histogramForm = iota // as scraped, a Prometheus 2
	nativeOnly                       // converted at scrape, a Prometheus 3 with convert_classic_histograms_to_nhcb
	bothForms                        // converted, with the classic series kept (always_scrape_classic_histograms)
)

// remotePlan is the remote source's plan.
func remotePlan() queryPlan {
	return queryPlan{sharedQuantiles: true, concurrency: 4, groupBySource: true, nativeHistograms: &nativeOrClassicQueries{}}
}

// mixedFleet is a store holding n instances of the engine fixtures, the
// histograms of instance i in the form formOf(i).
func mixedFleet(t testing.TB, n int, formOf func(int) histogramForm) *signalstore.Store {
	t.Helper()
	store := openTestStore(t)
	templates := fixtureTemplates(t, "vllm", "sglang", "tgi")
	for i := range n {
		inst := fmt.Sprintf("10.0.%d.%d:8000", i/250, i%250)
		target := labels.FromStrings("instance", inst, "job", "test")
		for j, text := range templates[i%len(templates)] {
			ts := t0.Add(time.Duration(j) * 15 * time.Second)
			form := formOf(i)
			if form != nativeOnly {
				scrapeText(t, store, inst, ts, text)
			}
			if form != classicOnly {
				appendNative(t, store, text, ts, target, nil)
			}
		}
	}
	return store
}

// TestRemoteReadsNativeHistograms collects one fleet from a source that
// holds its histograms as classic series and from sources that hold them,
// on every instance or some, as native histograms (or both), with the
// remote plan: the signals must be the same.
func TestRemoteReadsNativeHistograms(t *testing.T) {
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	const n = 18
	collect := func(store *signalstore.Store, plan queryPlan) (*Snapshot, *recordingSource) {
		t.Helper()
		return collectPlanned(t, store, profs, plan)
	}
	classic := mixedFleet(t, n, func(int) histogramForm { return classicOnly })
	want, _ := collect(classic, queryPlan{})

	asWritten, src := collect(classic, remotePlan())
	withoutNative := remotePlan()
	withoutNative.nativeHistograms = nil
	if before, _ := collect(classic, withoutNative); asWritten.Queries != before.Queries+1 {
		t.Errorf("%d queries asking for native histograms, %d without: want one more", asWritten.Queries, before.Queries)
	}
	if native := src.native(); native > 0 {
		t.Errorf("a source without native histograms was sent %d queries in the native form", native)
	}
	sameSignals(t, "classic histograms", want, asWritten)

	for _, tc := range []struct {
		name   string
		formOf func(int) histogramForm
	}{
		{"native histograms", func(int) histogramForm { return nativeOnly }},
		{"native histograms on every other instance", func(i int) histogramForm { return histogramForm(i % 2) }},
		{"both forms on some instances", func(i int) histogramForm { return histogramForm(i % 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, src := collect(mixedFleet(t, n, tc.formOf), remotePlan())
			if src.native() == 0 {
				t.Error("no query was sent in the native form")
			}
			sameSignals(t, tc.name, want, got)
		})
	}
}

// native counts the queries s was sent that read native histograms.
func (s *recordingSource) native() int {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	n := 0
	for _, e := range s.exprs {
		if strings.Contains(e, "histogram_count(") || strings.Contains(e, "histogram_sum(") {
			n++
		}
	}
	return n
}

// sameSignals fails t unless got has want's signals, with values equal
// but for rounding: a native histogram's bucket rates are summed where a
// classic histogram's are read already cumulative.
func sameSignals(t *testing.T, what string, want, got *Snapshot) {
	t.Helper()
	if len(got.Samples) != len(want.Samples) {
		t.Fatalf("%s: %d signals, want %d", what, len(got.Samples), len(want.Samples))
	}
	quantiles := 0
	for i, w := range want.Samples {
		g := got.Samples[i]
		if !labels.Equal(g.Labels, w.Labels) || !closeEnough(g.Value, w.Value) {
			t.Errorf("%s: %s = %v, want %s = %v", what, g.Labels, g.Value, w.Labels, w.Value)
		}
		if w.Labels.Has("quantile") && !math.IsNaN(w.Value) {
			quantiles++
		}
	}
	if quantiles < 30 {
		t.Errorf("%s: only %d quantiles compared; the fixtures should give many more", what, quantiles)
	}
}

func closeEnough(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// TestBackfillReadsNativeHistograms backfills from a source that holds
// the fleet's histograms as native ones, on some instances or all, with
// the remote plan, and checks the history against a classic source's.
func TestBackfillReadsNativeHistograms(t *testing.T) {
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	const n = 12
	ctx := context.Background()
	from, to, step := t0.Add(15*time.Second), t0.Add(45*time.Second), 5*time.Second
	history := func(source *signalstore.Store, plan queryPlan) promql.Matrix {
		t.Helper()
		local := openTestStore(t)
		c := New(Options{Metrics: testMetrics(), Store: local})
		if err := c.ApplyConfig(config.Default(), plannedSource{Source: source, plan: plan}, profs); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Backfill(ctx, from, to, step); err != nil {
			t.Fatal(err)
		}
		m, err := local.QueryRange(ctx, `{__name__=~"llm_.+"}`, from, to, step)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	want := history(mixedFleet(t, n, func(int) histogramForm { return classicOnly }), queryPlan{})
	for name, formOf := range map[string]func(int) histogramForm{
		"native histograms":                         func(int) histogramForm { return nativeOnly },
		"native histograms on every other instance": func(i int) histogramForm { return histogramForm(i % 2) },
	} {
		got := history(mixedFleet(t, n, formOf), remotePlan())
		if len(got) != len(want) {
			t.Fatalf("%s: backfilled %d series, want %d", name, len(got), len(want))
		}
		quantiles := 0
		for i := range want {
			g, w := got[i], want[i]
			same := labels.Equal(g.Metric, w.Metric) && len(g.Floats) == len(w.Floats)
			for k := 0; same && k < len(w.Floats); k++ {
				same = g.Floats[k].T == w.Floats[k].T && closeEnough(g.Floats[k].F, w.Floats[k].F)
			}
			if !same {
				t.Errorf("%s: backfilled %s %v, want %s %v", name, g.Metric, g.Floats, w.Metric, w.Floats)
			}
			if w.Metric.Has("quantile") {
				quantiles++
			}
		}
		if quantiles < 20 {
			t.Errorf("%s: only %d quantile series compared", name, quantiles)
		}
	}
}
