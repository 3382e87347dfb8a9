package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// footprintInterval is the scrape and evaluation interval of the
// footprint benchmark, the one the figures are stated at.
const footprintInterval = 15 * time.Second

// footprintWarmup is how many cycles run before measuring: the rate
// windows fill, every series exists and the rules have evaluated.
const footprintWarmup = 6

// BenchmarkFleetFootprint runs the agent as a child process in embedded
// mode against simulated fleets of 100 and 1000 servers (60 % vLLM,
// 20 % SGLang, 20 % TGI) at a 15 s interval. One iteration is one
// collection cycle, after a warm-up. It reports the agent's resident
// memory (and its anonymous part, without the file-backed pages the
// kernel can reclaim) and Go heap in use, each also per 100 servers, its
// CPU as a share of one core over the measured cycles, the mean cycle
// time, and the series in the TSDB's head and in the raw samples.
// The 1000-server case is compared with the 100-server one in bench.json.
func BenchmarkFleetFootprint(b *testing.B) {
	if testing.Short() {
		b.Skip("runs simulated fleets for minutes")
	}
	parent := b
	agents := map[int]*footprintAgent{}
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			// The framework calls this once with b.N = 1 and again with
			// the requested count; both measure the same agent.
			a := agents[n]
			if a == nil {
				a = startFootprintAgent(outliving{B: b, parent: parent}, n)
				agents[n] = a
			}
			start := a.read(b)
			began := time.Now()
			b.ResetTimer()
			for i := range b.N {
				a.waitCycle(b, start.cycles+float64(i+1))
			}
			b.StopTimer()
			end := a.read(b)
			elapsed := time.Since(began).Seconds()
			cycles := end.cycles - start.cycles
			per100 := float64(n) / 100
			rss, anon := a.rss(b)
			b.ReportMetric(rss/1e6, "rss-MB")
			b.ReportMetric(rss/1e6/per100, "rss-MB/100servers")
			b.ReportMetric(anon/1e6, "rss-anon-MB")
			b.ReportMetric(end.heapInuse/1e6, "heap-MB")
			b.ReportMetric(end.heapInuse/1e6/per100, "heap-MB/100servers")
			b.ReportMetric((end.cpu-start.cpu)/elapsed, "cpu-cores")
			b.ReportMetric((end.cycleSeconds-start.cycleSeconds)/cycles, "cycle-s")
			b.ReportMetric(end.series, "head-series")
			b.ReportMetric(end.rawSeries, "raw-series")
		})
	}
}

// outliving is a sub-benchmark whose fleet and agent last until the
// parent benchmark ends, across the framework's calls of the sub-benchmark.
type outliving struct {
	*testing.B
	parent *testing.B
}

func (o outliving) Cleanup(f func()) { o.parent.Cleanup(f) }

func (o outliving) TempDir() string { return o.parent.TempDir() }

type footprintAgent struct {
	proc          *agentProcess
	metrics, addr string
}

// footprintSample is what the agent's /metrics says at one moment.
type footprintSample struct {
	cycles, cycleSeconds, cpu, heapInuse, series, rawSeries, compactions float64
}

func startFootprintAgent(b outliving, n int) *footprintAgent {
	b.Helper()
	lns := loopbackListeners(b, n)
	var fleet, cfg strings.Builder
	fleet.WriteString("seed: 11\nservers:\n")
	fmt.Fprintf(&cfg, "global: {scrape_interval: %s, scrape_timeout: 10s, evaluation_interval: %s}\nsource:\n  targets:\n", footprintInterval, footprintInterval)
	for i, ln := range lns {
		engine := "vllm"
		switch {
		case i%5 == 3:
			engine = "sglang"
		case i%5 == 4:
			engine = "tgi"
		}
		fmt.Fprintf(&fleet, "  - {name: s%d, engine: %s, listen: %q, workload: {rate: 1}}\n", i, engine, ln.Addr())
		fmt.Fprintf(&cfg, "    - url: http://%s/metrics\n", ln.Addr())
	}
	serveFleet(b, fleet.String(), lns, "secret", time.Second)

	dir := b.TempDir()
	cfgFile := filepath.Join(dir, "perfagent.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	addr := testutil.FreeAddr(b)
	a := &footprintAgent{metrics: "http://" + addr + "/metrics", addr: addr}
	a.proc = &agentProcess{t: b, log: &testutil.SyncBuffer{}, args: []string{
		"--config.file=" + cfgFile, "--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr, "--log.level=warn",
	}}
	a.proc.start()
	b.Cleanup(a.proc.kill)
	a.waitCycle(b, footprintWarmup)
	return a
}

// waitCycle waits until the agent has completed the given number of
// collection cycles. Between cycles it watches the last collection's time
// in /api/v1/health, answered from a copy made once a cycle, and reads
// /metrics only when that changes (the count of cycles there goes up
// first). Reading /metrics every second instead would add the work of a
// scrape of the agent fifteen times a cycle to the CPU measured (0.013 of
// a core at 100 servers, a third of the agent's own), where the
// Prometheus that scrapes the agent adds it once an interval. It returns
// the reading of /metrics that saw the count reached.
func (a *footprintAgent) waitCycle(b testing.TB, cycles float64) footprintSample {
	b.Helper()
	deadline := time.Now().Add(time.Duration(cycles+4) * footprintInterval)
	for {
		seen, _ := lastCollection(a.addr)
		if s := a.read(b); s.cycles >= cycles {
			return s
		}
		for last, _ := lastCollection(a.addr); last.Equal(seen); last, _ = lastCollection(a.addr) {
			if time.Now().After(deadline) {
				b.Fatalf("the agent did not complete %g cycles in time; its log:\n%s", cycles, a.proc.log)
			}
			time.Sleep(time.Second)
		}
	}
}

func (a *footprintAgent) read(b testing.TB) footprintSample {
	b.Helper()
	resp, err := http.Get(a.metrics)
	if err != nil {
		return footprintSample{}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return footprintSample{}
	}
	page := string(body)
	return footprintSample{
		cycles:       metricValue(page, "perfagent_collection_duration_seconds_count"),
		cycleSeconds: metricValue(page, "perfagent_collection_duration_seconds_sum"),
		cpu:          metricValue(page, "process_cpu_seconds_total"),
		heapInuse:    metricValue(page, "go_memstats_heap_inuse_bytes"),
		series:       metricValue(page, "prometheus_tsdb_head_series "),
		rawSeries:    metricValue(page, "perfagent_raw_series "),
		compactions:  metricValue(page, "prometheus_tsdb_compactions_total "),
	}
}

// rss is the agent's resident memory in bytes, and the anonymous part of
// it.
func (a *footprintAgent) rss(b *testing.B) (total, anon float64) {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.proc.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("reading the agent's memory: %v", err)
	}
	kB := func(field string) float64 {
		for line := range strings.Lines(string(status)) {
			if rest, ok := strings.CutPrefix(line, field+":"); ok {
				var kb float64
				if _, err := fmt.Sscan(rest, &kb); err == nil {
					return kb * 1024
				}
			}
		}
		b.Fatalf("no %s in the agent's /proc status", field)
		return 0
	}
	return kB("VmRSS"), kB("RssAnon")
}
