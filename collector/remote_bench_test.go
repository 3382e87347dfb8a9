package collector

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/internal/testutil"
)

// BenchmarkRemoteCycle measures one collection, and a start's backfill,
// against Debian's prometheus scraping a fleet of fixture servers, for
// each query plan, the last the agent's, in one run: the duration
// (ns/op), the CPU seconds Prometheus spends answering and the queries of
// a cycle. The fleet stops before the measurement and every cycle reads
// the same instant, so Prometheus does little else than answer the agent. PERFAGENT_BENCH_INSTANCES sets the
// fleet size (240 by default, what a 2-core machine scrapes every second).
func BenchmarkRemoteCycle(b *testing.B) {
	n := 240
	if s := os.Getenv("PERFAGENT_BENCH_INSTANCES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("PERFAGENT_BENCH_INSTANCES: %v", err)
		}
	}
	var handlers []http.Handler
	for _, engine := range []string{"vllm", "sglang", "tgi"} {
		firsts, _ := filepath.Glob(filepath.Join("profiles", "testdata", engine, "*_t00.prom"))
		sort.Strings(firsts)
		for _, f := range firsts {
			handlers = append(handlers, loadLinearExposition(b, f, strings.Replace(f, "_t00", "_t15", 1)))
		}
	}
	var servers []*httptest.Server
	var addrs []string
	for i := range n {
		srv := httptest.NewServer(handlers[i%len(handlers)])
		servers = append(servers, srv)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	stopFleet := func() {
		for _, s := range servers {
			s.Close()
		}
		servers = nil
	}
	b.Cleanup(stopFleet)
	promURL := testutil.StartPrometheus(b, fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 900ms}\nscrape_configs:\n  - job_name: fleet\n    static_configs:\n      - targets: [%s]\n", strings.Join(addrs, ", ")))

	rcfg := config.DefaultRemoteConfig()
	rcfg.URL = config.URL(promURL)
	rcfg.QueryTimeout = config.Duration(time.Minute)
	remote, err := NewRemoteSource(rcfg, testMetrics())
	if err != nil {
		b.Fatal(err)
	}
	// The source's own plan, with its check for native histograms.
	agentPlan := remote.plan
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		v, err := remote.Query(ctx, `count(count_over_time(up{job="fleet"}[30s]) >= 30)`, time.Now())
		if err == nil && len(v) == 1 && int(v[0].F) == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("Prometheus did not scrape all %d servers in time (last error: %v)", n, err)
		}
		time.Sleep(time.Second)
	}
	at := time.Now().Add(-1500 * time.Millisecond)
	stopFleet()

	cfg := config.Default()
	cfg.Collector.RateWindow = config.Duration(10 * time.Second)
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	// idle is Prometheus's own CPU rate without the agent (failing scrapes
	// of the stopped fleet, housekeeping), taken out of each figure.
	before, start := promCPU(b, promURL), time.Now()
	time.Sleep(3 * time.Second)
	idle := (promCPU(b, promURL) - before) / time.Since(start).Seconds()

	plans := []struct {
		name string
		plan queryPlan
	}{
		{"plan=each-rule", queryPlan{}},
		{"plan=shared-quantiles", queryPlan{sharedQuantiles: true}},
		{"plan=shared-quantiles,concurrency=4", queryPlan{sharedQuantiles: true, concurrency: 4}},
		{"plan=shared-quantiles,concurrency=4,group-by-source", agentPlan},
	}
	// measure runs cycle b.N times and reports Prometheus's CPU per run.
	measure := func(b *testing.B, cycle func()) {
		cpu0, start := promCPU(b, promURL), time.Now()
		for b.Loop() {
			cycle()
		}
		cpu := promCPU(b, promURL) - cpu0 - idle*time.Since(start).Seconds()
		b.ReportMetric(cpu/float64(b.N), "prom-cpu-s/op")
	}
	for _, bc := range plans {
		b.Run("cycle/"+bc.name, func(b *testing.B) {
			remote.plan = bc.plan
			c := New(Options{Metrics: testMetrics()})
			if err := c.ApplyConfig(cfg, remote, profs); err != nil {
				b.Fatal(err)
			}
			var snap *Snapshot
			measure(b, func() {
				if snap, err = c.Collect(ctx, at, CollectOptions{}); err != nil {
					b.Fatal(err)
				}
			})
			if len(snap.Instances) != n || len(snap.Errors) > 0 {
				b.Fatalf("cycle saw %d instances, want %d; errors: %v", len(snap.Instances), n, snap.Errors)
			}
			b.ReportMetric(float64(snap.Queries), "queries/cycle")
		})
	}
	// A start's backfill: 20 s of history at the scrape interval, 21
	// steps (a 15-minute backfill at 15 s has 60).
	for _, bc := range plans {
		b.Run("backfill/"+bc.name, func(b *testing.B) {
			remote.plan = bc.plan
			samples := 0
			measure(b, func() {
				b.StopTimer()
				c := New(Options{Metrics: testMetrics(), Store: openTestStore(b)})
				if err := c.ApplyConfig(cfg, remote, profs); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if samples, err = c.Backfill(ctx, at.Add(-20*time.Second), at, time.Second); err != nil {
					b.Fatal(err)
				}
			})
			if samples == 0 {
				b.Fatal("nothing backfilled")
			}
		})
	}
}

// promCPU reads process_cpu_seconds_total from Prometheus's own metrics.
func promCPU(b *testing.B, promURL string) float64 {
	b.Helper()
	resp, err := http.Get(promURL + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatalf("no process_cpu_seconds_total in %s/metrics (%v)", promURL, sc.Err())
	return 0
}
