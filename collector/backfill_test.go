package collector

import (
	"context"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

func TestBackfillComputesHistory(t *testing.T) {
	raw := openTestStore(t) // stands in for the remote Prometheus
	for i := range 41 {     // 10 minutes of scrapes every 15 s
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		scrapeText(t, raw, "a:1", ts, fakeExposition(float64(i%5), 100+15*float64(i)))
		if i < 20 { // b:1 disappears after 5 minutes
			scrapeText(t, raw, "b:1", ts, fakeExposition(9, 0))
		} else if i == 20 {
			markStale(t, raw, "b:1", ts, `fake_running{model_name="m1"}`, `fake_tokens_total{model_name="m1"}`)
		}
	}
	local := openTestStore(t)
	c := New(Options{Metrics: testMetrics(), Store: local})
	if err := c.ApplyConfig(config.Default(), raw, []*Profile{mustProfile(t, "fake.yml", fakeProfile)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	from, to, step := t0.Add(2*time.Minute), t0.Add(10*time.Minute), 30*time.Second
	n, err := c.Backfill(ctx, from, to, step)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("nothing backfilled")
	}
	m, err := local.QueryRange(ctx, "llm_requests_running", from, to, step)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, s := range m {
		counts[s.Metric.Get(signals.LabelInstance)] = len(s.Floats)
		if s.Metric.Get(signals.LabelEngine) != "fake" || s.Metric.Get(signals.LabelModel) != "m1" {
			t.Errorf("backfilled series %s lacks identity labels", s.Metric)
		}
	}
	// a:1 at every step from 2m to 10m; b:1 only until it went stale at 5m.
	if counts["a:1"] != 17 {
		t.Errorf("a:1 has %d points, want 17", counts["a:1"])
	}
	if counts["b:1"] != 6 {
		t.Errorf("b:1 has %d points, want 6 (2m to 4m30s)", counts["b:1"])
	}
	v, err := local.Query(ctx, "llm_generation_tokens_per_second", t0.Add(6*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].F < 0.999 || v[0].F > 1.001 {
		t.Errorf("backfilled generation rate at 6m = %v, want 1 token/s on a:1 only", v)
	}
}
