package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/internal/testutil"
	"github.com/optiinfra/perfagent/shard"
)

// mixedFleet serves n simulated servers, vLLM, SGLang and TGI in turn.
func mixedFleet(t *testing.T, n int) *simFleet {
	t.Helper()
	lns := loopbackListeners(t, n)
	var b strings.Builder
	b.WriteString("seed: 5\nservers:\n")
	for i, ln := range lns {
		engine := []string{"vllm", "sglang", "tgi"}[i%3]
		fmt.Fprintf(&b, "  - {name: %s-%d, engine: %s, listen: %q, workload: {rate: 4}}\n", engine, i, engine, ln.Addr())
	}
	return serveFleet(t, b.String(), lns, "secret", 250*time.Millisecond)
}

var instanceInfo = regexp.MustCompile(`(?m)^llm_instance_info\{.*?instance="([^"]+)"`)

// agentInstances are the instances whose signals the agent exports.
func agentInstances(t *testing.T, a *testAgent) []string {
	t.Helper()
	_, metrics := get(t, a.url+"/metrics")
	var out []string
	for _, m := range instanceInfo.FindAllStringSubmatch(metrics, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// TestShardsCoverTheFleetOnce splits one simulated fleet between two
// agents, in embedded mode and in remote mode against Debian's Prometheus
// and VictoriaMetrics, and checks that each agent exports the signals of
// exactly the instances of its shard, so that together they cover every
// instance once, and that each says which shard it is.
func TestShardsCoverTheFleetOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two agents over a simulated fleet per mode")
	}
	sim := mixedFleet(t, 12)
	scrape := fmt.Sprintf("global: {scrape_interval: 500ms, scrape_timeout: 400ms}\nscrape_configs:\n  - job_name: fleet\n    static_configs:\n      - targets: [%s]\n", strings.Join(sim.addrs, ", "))
	remote := func(url string) string {
		return fmt.Sprintf("global: {evaluation_interval: 500ms}\ncollector: {rate_window: 4s, probe: {enabled: false}}\nsource:\n  prometheus: {url: %s, backfill: 0s}\n", url)
	}
	for _, tc := range []struct {
		mode   string
		config func(t *testing.T) string
	}{
		{"embedded", func(*testing.T) string {
			urls := make([]string, len(sim.addrs))
			for i, a := range sim.addrs {
				urls[i] = "http://" + a
			}
			// A second's pace: with a race-built agent and fleet on a
			// loaded machine, scrapes with fastConfig's 200 ms timeout
			// failed half the time and instances dropped in and out.
			return strings.NewReplacer(
				"scrape_interval: 250ms, scrape_timeout: 200ms, evaluation_interval: 250ms", "scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s",
				"rate_window: 2s", "rate_window: 4s",
			).Replace(fastConfig(urls...))
		}},
		{"prometheus", func(t *testing.T) string { return remote(testutil.StartPrometheus(t, scrape)) }},
		{"victoriametrics", func(t *testing.T) string { return remote(testutil.StartVictoriaMetrics(t, scrape)) }},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg := tc.config(t)
			const count = 2
			want := make([][]string, count)
			for _, addr := range sim.addrs {
				sh, _ := shard.New(0, count)
				want[sh.Of(addr)] = append(want[sh.Of(addr)], addr)
			}
			agents := make([]*testAgent, count)
			for i := range count {
				agents[i] = startAgent(t, cfg, func(f *daemonFlags) { f.shardIndex, f.shardCount = i, count })
			}
			seen := map[string]int{}
			for i, a := range agents {
				slices.Sort(want[i])
				waitReady(t, a)
				waitWithin(t, fmt.Sprintf("shard %d's %d instances", i, len(want[i])), time.Minute, func() bool {
					return slices.Equal(agentInstances(t, a), want[i])
				})
				for _, inst := range agentInstances(t, a) {
					seen[inst]++
				}
				// A scrape that times out on a loaded machine drops an
				// instance from one cycle's count: the count is awaited.
				waitWithin(t, fmt.Sprintf("shard %d's /api/v1/health to name its shard and count its %d instances", i, len(want[i])), 30*time.Second, func() bool {
					_, health := get(t, a.url+"/api/v1/health")
					return strings.Contains(health, fmt.Sprintf(`"shard":{"index":%d,"count":%d}`, i, count)) &&
						strings.Contains(health, fmt.Sprintf(`"instances":%d`, len(want[i])))
				})
				if tc.mode == "embedded" {
					_, targets := get(t, a.url+"/api/v1/targets?limit=0")
					if strings.Count(targets, `"url":`) != len(want[i]) {
						t.Errorf("shard %d lists other targets than its %d: %s", i, len(want[i]), targets)
					}
				}
				_, metrics := get(t, a.url+"/metrics")
				if info := fmt.Sprintf(`perfagent_shard_info{count="%d",index="%d"} 1`, count, i); !strings.Contains(metrics, info) {
					t.Errorf("shard %d: /metrics lacks %s", i, info)
				}
			}
			for _, addr := range sim.addrs {
				if seen[addr] != 1 {
					t.Errorf("%s: read by %d shards, want 1", addr, seen[addr])
				}
			}
			t.Logf("shards hold %d and %d of %d instances", len(want[0]), len(want[1]), len(sim.addrs))
		})
	}
}

// TestShardFlagsAreChecked refuses shards that cannot exist before
// anything starts.
func TestShardFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--shard.count=0"}, "shard count 0: it must be at least 1"},
		{[]string{"--shard.index=2", "--shard.count=2"}, "shard index 2: with 2 shards it must be between 0 and 1"},
		{[]string{"--shard.index=-1", "--shard.count=3"}, "shard index -1: with 3 shards it must be between 0 and 2"},
	} {
		var stdout, stderr strings.Builder
		if code := run(append([]string{"--config.file=/nonexistent.yml", "--web.listen-address=127.0.0.1:0"}, tc.args...), &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.err, stderr.String())
		}
	}
}
