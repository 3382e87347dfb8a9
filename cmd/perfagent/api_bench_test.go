package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
)

// apiClients is how many clients read the API at once in
// BenchmarkAPIAtFleetScale, and apiRounds how many requests each sends per
// benchmark iteration.
const (
	apiClients = 64
	apiRounds  = 4
)

// BenchmarkAPIAtFleetScale reads the API of an agent that watches 1000
// simulated servers (600 vLLM, 200 SGLang, 200 TGI, a bottleneck and a
// recommendation on each) with 64 clients at once, endpoint by endpoint,
// and in the same iteration a trivial handler that serves a byte slice of
// the same size from memory: the most a Go server can do for an answer of
// that size on this machine. It reports each endpoint's requests per
// second and p99 latency as ratios to the trivial handler's, and the
// requests that failed. The agent collects every 15 s meanwhile, as it
// would in production, and a round that meets a cycle is slower: run
// enough iterations (-benchtime 20x) for the rounds of both to meet
// cycles alike.
func BenchmarkAPIAtFleetScale(b *testing.B) {
	const vllm, sglang, tgi = 600, 200, 200
	lns := loopbackListeners(b, vllm+sglang+tgi)
	var fleet strings.Builder
	fleet.WriteString("seed: 5\nservers:\n")
	for i, ln := range lns {
		engine := "vllm"
		switch {
		case i >= vllm+sglang:
			engine = "tgi"
		case i >= vllm:
			engine = "sglang"
		}
		fmt.Fprintf(&fleet, "  - {name: s-%d, engine: %s, listen: %q, model: {name: meta-llama/Llama-3.1-8B-Instruct}, workload: {rate: 2}}\n", i, engine, ln.Addr())
	}
	sim := serveFleet(b, fleet.String(), lns, "bench-secret", time.Second)
	var cfg strings.Builder
	cfg.WriteString("global: {scrape_interval: 15s, scrape_timeout: 10s, evaluation_interval: 15s}\ncollector: {rate_window: 1m, probe: {enabled: false}}\nsource:\n  targets:\n")
	for _, a := range sim.addrs {
		fmt.Fprintf(&cfg, "    - url: http://%s/metrics\n", a)
	}
	fmt.Fprintf(&cfg, `rules: {rule_files: [%s]}
recommender:
  models:
    - {name: meta-llama/Llama-3.1-8B-Instruct, parameters: 8.03e9, layers: 32, kv_heads: 8, head_dim: 128, dtype_bytes: 2, gpu_memory_bytes: 85899345920}
`, writeKVRule(b, b.TempDir()))
	a := startAgent(b, cfg.String(), func(f *daemonFlags) {
		lvl := promslog.NewLevel()
		_ = lvl.Set("warn")
		f.log = promslog.Config{Level: lvl}
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: apiClients, DisableCompression: true}}
	// Every instance, a bottleneck on each, and recommendations.
	var instances, bottlenecks, recommendations int
	deadline := time.Now().Add(4 * time.Minute)
	for instances < len(lns) || bottlenecks < len(lns) || recommendations == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("after 4 minutes: %d instances, %d bottlenecks, %d recommendations; want %d, %[4]d and some", instances, bottlenecks, recommendations, len(lns))
		}
		time.Sleep(time.Second)
		var h struct {
			Data struct {
				Instances int `json:"instances"`
			} `json:"data"`
		}
		var bs struct {
			Data struct {
				Bottlenecks []json.RawMessage `json:"bottlenecks"`
			} `json:"data"`
		}
		var rs struct {
			Data struct {
				Recommendations []json.RawMessage `json:"recommendations"`
			} `json:"data"`
		}
		if getJSON(client, a.url+"/api/v1/health", &h) && getJSON(client, a.url+"/api/v1/bottlenecks?limit=0", &bs) && getJSON(client, a.url+"/api/v1/recommendations?limit=0", &rs) {
			instances, bottlenecks, recommendations = h.Data.Instances, len(bs.Data.Bottlenecks), len(rs.Data.Recommendations)
		}
	}

	// A collection on demand for one instance, next to one of the fleet.
	b.Run("collect", func(b *testing.B) {
		post := func(body string) time.Duration {
			t := time.Now()
			resp, err := client.Post(a.url+"/api/v1/metrics/collect", "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("POST /api/v1/metrics/collect %s = %s", body, resp.Status)
			}
			return time.Since(t)
		}
		var fleet, one time.Duration
		for b.Loop() {
			fleet += post(`{}`)
			one += post(fmt.Sprintf(`{"instances":[%q]}`, sim.addrs[0]))
		}
		b.ReportMetric(float64(fleet.Milliseconds())/float64(b.N), "fleet-ms")
		b.ReportMetric(float64(one.Milliseconds())/float64(b.N), "one-instance-ms")
		b.ReportMetric(float64(one)/float64(fleet), "one/fleet")
	})

	for _, path := range []string{"/api/v1/instances", "/api/v1/bottlenecks", "/api/v1/recommendations", "/api/v1/health", "/metrics"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			resp, err := client.Get(a.url + path)
			if err != nil {
				b.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("GET %s = %d, %v", path, resp.StatusCode, err)
			}
			contentType := resp.Header.Get("Content-Type")
			trivial := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", contentType)
				_, _ = w.Write(body)
			}))
			defer trivial.Close()
			var agent, base loadResult
			for b.Loop() {
				agent.add(load(client, a.url+path))
				base.add(load(client, trivial.URL))
			}
			b.ReportMetric(float64(len(body)), "bytes")
			b.ReportMetric(agent.rate(), "req/s")
			b.ReportMetric(base.rate(), "trivial-req/s")
			b.ReportMetric(agent.rate()/base.rate(), "req/s-ratio")
			b.ReportMetric(agent.p99().Seconds()*1000, "p99-ms")
			b.ReportMetric(base.p99().Seconds()*1000, "trivial-p99-ms")
			b.ReportMetric(float64(agent.p99())/float64(base.p99()), "p99-ratio")
			b.ReportMetric(float64(agent.errors+base.errors), "errors")
		})
	}
}

// loadResult is what one or more rounds of load measured.
type loadResult struct {
	latencies []time.Duration
	elapsed   time.Duration
	errors    int
}

func (r *loadResult) add(o loadResult) {
	r.latencies = append(r.latencies, o.latencies...)
	r.elapsed += o.elapsed
	r.errors += o.errors
}

func (r *loadResult) rate() float64 {
	return float64(len(r.latencies)) / r.elapsed.Seconds()
}

func (r *loadResult) p99() time.Duration {
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// load sends apiRounds requests to url from each of apiClients clients at
// once, each reading every answer to the end.
func load(client *http.Client, url string) loadResult {
	var (
		mtx sync.Mutex
		out loadResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range apiClients {
		wg.Go(func() {
			var mine loadResult
			for range apiRounds {
				t := time.Now()
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: %s", url, resp.Status)
					}
				}
				if err != nil {
					mine.errors++
				}
				mine.latencies = append(mine.latencies, time.Since(t))
			}
			mtx.Lock()
			out.add(mine)
			mtx.Unlock()
		})
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	return out
}

// getJSON reads url's JSON answer into v, reporting whether it could.
func getJSON(client *http.Client, url string, v any) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
}
