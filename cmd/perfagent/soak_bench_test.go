package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// soakWindowCycles is how many cycles one line of a soak's log covers at
// least: ten minutes at the footprint interval. A longer run's lines
// cover a tenth of it each, since a benchmark's log keeps only its first
// ten lines.
const soakWindowCycles = 40

// BenchmarkFleetSoak runs the agent beside the simulated fleet of
// BenchmarkFleetFootprint for b.N cycles after its warm-up (`make soak`:
// 480, two hours at 15 s) and reports whether its memory stays flat. It
// reads the agent's resident memory, anonymous memory and Go heap after
// every cycle, logs their means for every tenth of the run (ten minutes
// at least), and reports the means of the first and last tenth of the
// run, the last as a ratio to the first (rss-growth: 1 is flat), the
// highest resident memory, the TSDB head compactions the run saw (a flat
// run must span at least one) and the CPU as a share of one core. It runs only when PERFAGENT_SOAK is
// set, to the number of servers (1000 in `make soak`).
func BenchmarkFleetSoak(b *testing.B) {
	env := os.Getenv("PERFAGENT_SOAK")
	if env == "" {
		b.Skip("runs for hours; make soak sets PERFAGENT_SOAK")
	}
	n, err := strconv.Atoi(env)
	if err != nil || n < 1 {
		b.Fatalf("PERFAGENT_SOAK=%q: want the number of servers", env)
	}
	parent := b
	var a *footprintAgent
	b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
		// The framework calls this once with b.N = 1 and again with
		// the requested count; both read the same agent.
		if a == nil {
			a = startFootprintAgent(outliving{B: b, parent: parent}, n)
		}
		start := a.read(b)
		began := time.Now()
		var (
			rss, anon, heap []float64
			end             footprintSample
		)
		window := max(soakWindowCycles, (b.N+9)/10)
		b.ResetTimer()
		for i := range b.N {
			end = a.waitCycle(b, start.cycles+float64(i+1))
			r, an := a.rss(b)
			rss, anon, heap = append(rss, r/1e6), append(anon, an/1e6), append(heap, end.heapInuse/1e6)
			if (i+1)%window == 0 {
				w := i + 1 - window
				b.Logf("cycles %d-%d: resident %.0f MB, anonymous %.0f MB, heap %.0f MB", w+1, i+1, mean(rss[w:]), mean(anon[w:]), mean(heap[w:]))
			}
		}
		b.StopTimer()
		tenth := max(1, b.N/10)
		first, last := mean(rss[:tenth]), mean(rss[len(rss)-tenth:])
		b.ReportMetric(first, "rss-first-MB")
		b.ReportMetric(last, "rss-last-MB")
		b.ReportMetric(last/first, "rss-growth")
		b.ReportMetric(slices.Max(rss), "rss-max-MB")
		b.ReportMetric(mean(anon[:tenth]), "rss-anon-first-MB")
		b.ReportMetric(mean(anon[len(anon)-tenth:]), "rss-anon-last-MB")
		b.ReportMetric(mean(heap[:tenth]), "heap-first-MB")
		b.ReportMetric(mean(heap[len(heap)-tenth:]), "heap-last-MB")
		b.ReportMetric(end.compactions-start.compactions, "compactions")
		b.ReportMetric((end.cpu-start.cpu)/time.Since(began).Seconds(), "cpu-cores")
	})
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}
