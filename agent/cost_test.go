package agent

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/cost"
)

// TestCosts prices the fixture's servers at 2 per GPU-hour: b:1 is idle
// (its B6 rule fires), so its unused share is priced too, and a:1's
// scale_out carries its cost change.
func TestCosts(t *testing.T) {
	cfg := config.Default()
	cfg.Cost.GPUHourPrices = map[string]float64{"h100": 2}
	cfg.Cost.DefaultAccelerator = "h100"
	f := newFixture(t, true, Config{Pricing: cost.NewPricing(&cfg)})
	if err := f.pipe.rules.Update([]string{filepath.Join("testdata", "rules.yml"), filepath.Join("testdata", "idle.yml")}); err != nil {
		t.Fatal(err)
	}
	now := start.Add(15 * time.Minute)
	f.scrape(t, start, now)
	if _, err := f.pipe.Cycle(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	costs := f.pipe.Costs()
	if len(costs) != 2 {
		t.Fatalf("priced %d instances, want 2: %+v", len(costs), costs)
	}
	for _, c := range costs {
		if c.PerHour != 2 || c.GPUs != 1 || c.GPUsSource != cost.GPUsAssumed {
			t.Errorf("%s: %+v, want one assumed GPU at 2 per hour", c.Instance, c)
		}
		switch c.Instance {
		case "a:1":
			if c.IdlePerHour != nil {
				t.Errorf("a:1 is busy but has an idle cost %g", *c.IdlePerHour)
			}
		case "b:1":
			// Its KV cache is half full, busier than 2 running of 16:
			// half of the hour is idle.
			if c.IdlePerHour == nil || math.Abs(*c.IdlePerHour-1) > 1e-9 {
				t.Errorf("b:1 idle cost %v, want 1", fmtPtr(c.IdlePerHour))
			}
		}
	}
	for _, r := range f.pipe.Latest().Recommendations {
		if r.Cost == nil {
			t.Errorf("%s has no cost", r.ID)
		} else if r.Cost.Currency != config.DefaultCurrency {
			t.Errorf("%s: cost in %q, want %s", r.ID, r.Cost.Currency, config.DefaultCurrency)
		}
	}
	if _, err := f.pipe.Recommend(context.Background(), now, RecommendRequest{Objectives: config.Objectives{Prefer: "money"}}); err == nil {
		t.Error("an unknown preference was accepted")
	}
}

func fmtPtr(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
