package collector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signalstore"
)

// loadFleet fills a store with n instances, cycling through the engine
// fixtures of the built-in profiles, four scrapes 15 s apart each.
func loadFleet(b testing.TB, store *signalstore.Store, n int) {
	b.Helper()
	templates := fixtureTemplates(b, "vllm", "sglang", "tgi")
	for i := range n {
		tpl := templates[i%len(templates)]
		inst := fmt.Sprintf("10.0.%d.%d:8000", i/250, i%250)
		for j, text := range tpl {
			scrapeText(b, store, inst, t0.Add(time.Duration(j)*15*time.Second), text)
		}
	}
}

// BenchmarkCollectionCycle measures one cycle (every profile rule and
// settings query, then the append) over fleets of growing size. The
// queries/cycle metric must be the same for every size: cost grows with
// signals × engines, not with instances.
func BenchmarkCollectionCycle(b *testing.B) {
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			store := openTestStore(b)
			loadFleet(b, store, n)
			c := New(Options{Metrics: testMetrics(), Store: store})
			if err := c.ApplyConfig(config.Default(), store, profs); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			at := t0.Add(45 * time.Second)
			var snap *Snapshot
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				var err error
				if snap, err = c.Cycle(ctx, at); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if len(snap.Instances) != n {
				b.Fatalf("cycle saw %d instances, want %d", len(snap.Instances), n)
			}
			b.ReportMetric(float64(snap.Queries), "queries/cycle")
			b.ReportMetric(float64(len(snap.Samples)), "signals/cycle")
		})
	}
}
