package collector

import (
	"context"
	"testing"
	"time"
)

// TestQueryResultsOutliveTheQuery guards against the engine's pooling: a
// result must keep its values after later queries ran.
func TestQueryResultsOutliveTheQuery(t *testing.T) {
	store := openTestStore(t)
	for i := range 5 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		scrapeText(t, store, "a:1", ts, fakeExposition(float64(i), 0))
	}
	ctx := context.Background()
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
}
