package collector

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

// recordingSource records the expressions its source is asked.
type recordingSource struct {
	Source
	mtx   sync.Mutex
	exprs []string
}

func (s *recordingSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	s.record(expr)
	return s.Source.Query(ctx, expr, ts)
}

func (s *recordingSource) QueryRange(ctx context.Context, expr string, from, to time.Time, step time.Duration) (promql.Matrix, error) {
	s.record(expr)
	return s.Source.QueryRange(ctx, expr, from, to, step)
}

func (s *recordingSource) record(expr string) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	s.exprs = append(s.exprs, expr)
}

// queryPlan is the plan of the source it records.
func (s *recordingSource) queryPlan() queryPlan { return planOf(s.Source) }

// TestCollectInstancesNarrowsQueries: a collection of some instances asks
// the source for their series only, and computes for them what a whole
// collection does.
func TestCollectInstancesNarrowsQueries(t *testing.T) {
	store := openTestStore(t)
	for i, in := range []string{"x:1", "y:1", "zx1:1"} {
		scrapeText(t, store, in, t0, fakeExposition(float64(2+i), 0))
	}
	src := &recordingSource{Source: store}
	c := New(Options{Metrics: testMetrics()})
	if err := c.ApplyConfig(config.Default(), src, []*Profile{mustProfile(t, "fake.yml", fakeProfile)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	whole, err := c.Collect(ctx, t0, CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		instances []string
		matcher   string
	}{
		{[]string{"y:1"}, `instance="y:1"`},
		// Unquoted, z.1:1 would select zx1:1's series too.
		{[]string{"x:1", "z.1:1"}, `instance=~"x:1|z\\.1:1"`},
	} {
		src.exprs = nil
		snap, err := c.Collect(ctx, t0, CollectOptions{Instances: tc.instances})
		if err != nil {
			t.Fatal(err)
		}
		if len(src.exprs) == 0 {
			t.Fatalf("%v: no query", tc.instances)
		}
		for _, e := range src.exprs {
			if strings.Count(e, tc.matcher) != strings.Count(e, "fake_") {
				t.Errorf("%v: query %s does not select %s in every selector", tc.instances, e, tc.matcher)
			}
		}
		var got []string
		for _, in := range snap.Instances {
			got = append(got, in.Instance)
		}
		want := slices.DeleteFunc(slices.Clone(tc.instances), func(s string) bool { return whole.Instance(s) == nil })
		if !slices.Equal(got, want) {
			t.Errorf("%v: instances %v, want %v", tc.instances, got, want)
		}
		for _, s := range snap.Samples {
			i := slices.IndexFunc(whole.Samples, func(w signals.Sample) bool { return w.Labels.String() == s.Labels.String() })
			if i < 0 || whole.Samples[i].Value != s.Value {
				t.Errorf("%v: %s = %g differs from the whole collection's", tc.instances, s.Labels, s.Value)
			}
		}
		if len(snap.Samples) == 0 {
			t.Errorf("%v: no signal", tc.instances)
		}
	}
}
