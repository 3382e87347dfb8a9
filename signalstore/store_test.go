package signalstore

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func openTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Options{Path: t.TempDir(), Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestQueryResultsOutliveTheQuery guards against the engine's pooling: a
// result must keep its values after later queries ran.
func TestQueryResultsOutliveTheQuery(t *testing.T) {
	store := openTestStore(t)
	ctx := context.Background()
	series := labels.FromStrings("__name__", "fake_running", "instance", "a:1")
	for i := range 5 {
		app := store.Appender(ctx)
		if _, err := app.Append(0, series, t0.Add(time.Duration(i)*15*time.Second).UnixMilli(), float64(i)); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	end := t0.Add(time.Minute)
	first, err := store.QueryRange(ctx, "fake_running", t0, end, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.QueryRange(ctx, "fake_running * 1000", t0, end, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || len(first[0].Floats) != 5 || first[0].Floats[4].F != 4 {
		t.Errorf("first result changed after a second query: %v", first)
	}
	v1, err := store.Query(ctx, "fake_running", end)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Query(ctx, "fake_running * 1000", end); err != nil {
		t.Fatal(err)
	}
	if len(v1) != 1 || v1[0].F != 4 {
		t.Errorf("first instant result changed after a second query: %v", v1)
	}
	if got, ok := store.MaxTime(); !ok || !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("MaxTime = %v, %v; want %v", got, ok, t0.Add(time.Minute))
	}
}

// TestSubqueryWithoutStep checks that `x[5m:]` steps at the evaluation
// interval, as in Prometheus, and follows a change of it.
func TestSubqueryWithoutStep(t *testing.T) {
	store := openTestStore(t)
	ctx := context.Background()
	series := labels.FromStrings("__name__", "fake_running", "instance", "a:1")
	app := store.Appender(ctx)
	for i := range 41 {
		if _, err := app.Append(0, series, t0.Add(time.Duration(i)*15*time.Second).UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		interval time.Duration
		want     float64
	}{
		{0, 5},                 // the default minute: 6m, 7m, 8m, 9m, 10m
		{15 * time.Second, 20}, // 5m15s … 10m
	} {
		store.SetEvaluationInterval(tt.interval)
		v, err := store.Query(ctx, "count_over_time(fake_running[5m:])", t0.Add(10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 1 || v[0].F != tt.want {
			t.Errorf("interval %s: count_over_time over a subquery = %v, want %g steps", tt.interval, v, tt.want)
		}
	}
}
