package simulator

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"
)

// oneServer builds a one-server fleet from a YAML server entry.
func oneServer(t testing.TB, server string) *FleetConfig {
	t.Helper()
	cfg, err := ParseFleet("test.yaml", []byte("seed: 5\nservers:\n- listen: 127.0.0.1:18000\n  "+server))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// steady runs a one-server fleet and returns the window from warm to end.
func steady(t testing.TB, server string, warm, end time.Duration) window {
	t.Helper()
	runs := runFleet(t, oneServer(t, server), end)
	for _, ss := range runs {
		return ss.window(warm, end)
	}
	return window{}
}

func TestLittlesLaw(t *testing.T) {
	t.Parallel()
	for _, engine := range []Engine{EngineVLLM, EngineSGLang, EngineTGI} {
		t.Run(string(engine), func(t *testing.T) {
			cfg := oneServer(t, fmt.Sprintf(`engine: %s
  workload: {rate: 8, prompt_tokens: {mean: 800, cv: 0.5}, output_tokens: {mean: 250, cv: 0.5}}`, engine))
			f, err := NewFleet(cfg, testStart)
			if err != nil {
				t.Fatal(err)
			}
			s := f.Servers()[0]
			// Time-average the number in the system over one-second samples.
			f.Advance(testStart.Add(10 * time.Minute))
			first := s.State()
			inSystem, n := 0.0, 0
			for at := 10*time.Minute + time.Second; at <= 40*time.Minute; at += time.Second {
				f.Advance(testStart.Add(at))
				s.mu.Lock()
				inSystem += float64(len(s.running) + s.waiting.len())
				s.mu.Unlock()
				n++
			}
			last := s.State()
			L := inSystem / float64(n)
			lambda := (last.Counters.Finished - first.Counters.Finished) / (30 * 60)
			W := last.E2E.Sub(first.E2E).Mean()
			t.Logf("L = %.3f, lambda x W = %.3f", L, lambda*W)
			if math.Abs(L-lambda*W)/L > 0.05 {
				t.Errorf("L = %.2f, lambda x W = %.2f x %.2f = %.2f: off by more than 5%%", L, lambda, W, lambda*W)
			}
		})
	}
}

func TestThroughputSaturates(t *testing.T) {
	t.Parallel()
	server := `engine: vllm
  workload: {rate: %v, prompt_tokens: {mean: 300, cv: 0.5}, output_tokens: {mean: 20, cv: 0.5}, max_tokens: 64, timeout: 1h}`
	var prev float64
	var tput []float64
	for _, rate := range []float64{10, 40, 160, 320} {
		w := steady(t, fmt.Sprintf(server, rate), 4*time.Minute, 8*time.Minute)
		x := w.finished / (4 * 60)
		tput = append(tput, x)
		t.Logf("rate %v: throughput %.1f req/s", rate, x)
		if x < prev*0.98 {
			t.Errorf("throughput fell from %.1f to %.1f req/s at rate %v", prev, x, rate)
		}
		prev = x
	}
	if tput[0] < 9 || tput[1] < 36 {
		t.Errorf("below capacity throughput should follow the load: %v", tput)
	}
	if tput[3] > tput[2]*1.05 || tput[2] > 0.75*160 {
		t.Errorf("throughput should saturate: %v", tput)
	}
}

func TestITLGrowsWithBatch(t *testing.T) {
	t.Parallel()
	server := `engine: vllm
  workload: {rate: %v, prompt_tokens: {mean: 1000, cv: 0.3}, output_tokens: {mean: 500, cv: 0.3}, max_tokens: 2048}`
	prevITL, prevRun := 0.0, 0.0
	for _, rate := range []float64{0.5, 2, 8, 16} {
		w := steady(t, fmt.Sprintf(server, rate), 4*time.Minute, 10*time.Minute)
		t.Logf("rate %v: running %.1f, ITL %.4fs", rate, w.avgRunning, w.itl.Mean())
		if w.avgRunning <= prevRun || w.itl.Mean() <= prevITL {
			t.Errorf("rate %v: running %.1f, ITL %.4fs; want both above %.1f, %.4fs", rate, w.avgRunning, w.itl.Mean(), prevRun, prevITL)
		}
		prevITL, prevRun = w.itl.Mean(), w.avgRunning
	}
}

func TestTTFTGrowsWithPromptLength(t *testing.T) {
	t.Parallel()
	for _, engine := range []Engine{EngineVLLM, EngineSGLang} {
		prev := 0.0
		for _, prompt := range []int{250, 1000, 4000, 7000} {
			w := steady(t, fmt.Sprintf(`engine: %s
  workload: {rate: 0.5, prompt_tokens: {mean: %d}, output_tokens: {mean: 50}}`, engine, prompt), time.Minute, 11*time.Minute)
			t.Logf("%s: prompt %d tokens: TTFT %.4fs", engine, prompt, w.ttft.Mean())
			if w.ttft.Mean() <= prev {
				t.Errorf("%s: TTFT %.4fs at %d prompt tokens, not above %.4fs", engine, w.ttft.Mean(), prompt, prev)
			}
			prev = w.ttft.Mean()
		}
	}
}

func TestMoreKVMemoryMeansFewerPreemptions(t *testing.T) {
	t.Parallel()
	server := `engine: vllm
  gpu: {memory_gib: 40, bandwidth_gbps: 1555, tflops: 312}
  settings: {%s}
  workload: {rate: 0.97, prompt_tokens: {mean: 1500, cv: 0.5, max: 6000}, output_tokens: {mean: 1200, cv: 0.4}, max_tokens: 2048}`
	cases := []struct {
		name          string
		worse, better string
	}{
		{"raise gpu_memory_utilization", "gpu_memory_utilization: 0.8", "gpu_memory_utilization: 0.9"},
		{"lower max_num_seqs", "gpu_memory_utilization: 0.8, max_num_seqs: 256", "gpu_memory_utilization: 0.8, max_num_seqs: 32"},
		{"fp8 KV cache", "gpu_memory_utilization: 0.8", "gpu_memory_utilization: 0.8, kv_cache_dtype: fp8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			worse := steady(t, fmt.Sprintf(server, c.worse), 5*time.Minute, 30*time.Minute)
			better := steady(t, fmt.Sprintf(server, c.better), 5*time.Minute, 30*time.Minute)
			t.Logf("preemptions %v -> %v", worse.preemptions, better.preemptions)
			if worse.preemptions == 0 || better.preemptions >= worse.preemptions {
				t.Errorf("preemptions %v -> %v, want fewer after the change", worse.preemptions, better.preemptions)
			}
		})
	}
}

func TestOverloadGrowsQueueWithoutBound(t *testing.T) {
	t.Parallel()
	for _, engine := range []Engine{EngineVLLM, EngineSGLang, EngineTGI} {
		t.Run(string(engine), func(t *testing.T) {
			t.Parallel()
			cfg := oneServer(t, fmt.Sprintf(`engine: %s
  settings: %s
  workload: {rate: 150, prompt_tokens: {mean: 300, cv: 0.5}, output_tokens: {mean: 20, cv: 0.5}, max_tokens: 64, timeout: 10h}`,
				engine, map[Engine]string{EngineVLLM: "{}", EngineSGLang: "{}", EngineTGI: "{max_concurrent_requests: 1000000}"}[engine]))
			runs := runFleet(t, cfg, 20*time.Minute)
			ss := runs[cfg.Servers[0].Name]
			at := func(m int) int { return ss[m*60/int(sampleStep.Seconds())].Waiting }
			t.Logf("waiting at 10/15/20 min = %d/%d/%d", at(10), at(15), at(20))
			if !(at(10) < at(15) && at(15) < at(20)) || float64(at(20)) < 1.6*float64(at(10)) {
				t.Errorf("waiting at 10/15/20 min = %d/%d/%d, want steady growth", at(10), at(15), at(20))
			}
		})
	}
}

func TestSameSeedSameOutput(t *testing.T) {
	t.Parallel()
	expose := func(cfg *FleetConfig) []byte {
		f, err := NewFleet(cfg, testStart)
		if err != nil {
			t.Fatal(err)
		}
		f.Advance(testStart.Add(15 * time.Minute))
		var buf bytes.Buffer
		for _, s := range f.Servers() {
			if err := s.WriteMetrics(&buf); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	for _, name := range []string{"healthy", "vllm-b1-kv-pressure", "sglang-b1-retraction", "tgi-b1-reservation"} {
		sc, err := LoadScenario(name)
		if err != nil {
			t.Fatal(err)
		}
		a, b := expose(sc.Fleet), expose(sc.Fleet)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two runs with seed %d differ", sc.Name, sc.Fleet.Seed)
		}
		other := *sc.Fleet
		other.Seed++
		if bytes.Equal(a, expose(&other)) {
			t.Errorf("%s: a different seed gave the same output", sc.Name)
		}
	}
}

func TestAdvanceInSmallStepsMatchesOneStep(t *testing.T) {
	t.Parallel()
	sc, err := LoadScenario("vllm-b1-kv-pressure")
	if err != nil {
		t.Fatal(err)
	}
	one, err := NewFleet(sc.Fleet, testStart)
	if err != nil {
		t.Fatal(err)
	}
	many, err := NewFleet(sc.Fleet, testStart)
	if err != nil {
		t.Fatal(err)
	}
	end := testStart.Add(20 * time.Minute)
	one.Advance(end)
	for at := testStart; !at.After(end); at = at.Add(7 * time.Second) {
		many.Advance(at)
	}
	many.Advance(end)
	a, b := one.Servers()[0].State(), many.Servers()[0].State()
	// Step boundaries differ, so allow a little drift but not a different regime.
	if math.Abs(a.Counters.Finished-b.Counters.Finished) > 0.05*a.Counters.Finished || (a.Counters.Preemptions == 0) != (b.Counters.Preemptions == 0) {
		t.Errorf("one advance: %+v\nmany advances: %+v", a.Counters, b.Counters)
	}
}

// TestFrontendGap: the API server's CPU time per request c shows as
// end-to-end time outside queue and inference, c + ρc / 2(1 − ρ) (M/D/1),
// and a second vLLM API server process halves ρ.
func TestFrontendGap(t *testing.T) {
	t.Parallel()
	const c, rate = 0.04, 20.0
	for _, tc := range []struct {
		engine  Engine
		servers int
	}{
		{EngineVLLM, 1},
		{EngineVLLM, 2},
		{EngineTGI, 1},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.engine, tc.servers), func(t *testing.T) {
			settings := ""
			if tc.engine == EngineVLLM {
				settings = fmt.Sprintf("\n  settings: {api_server_count: %d}", tc.servers)
			}
			w := steady(t, fmt.Sprintf(`engine: %s
  gpu: {frontend_ms: %g}%s
  workload: {rate: %g, prompt_tokens: {mean: 300, cv: 0.5}, output_tokens: {mean: 60, cv: 0.5}}`, tc.engine, c*1000, settings, rate), 2*time.Minute, 12*time.Minute)
			rho := rate * c / float64(tc.servers)
			want := c + rho*c/(2*(1-rho))
			// The queue and inference histograms of requests still running at
			// either end of the window differ slightly from the e2e one.
			t.Logf("frontend gap %.4f s, model %.4f s", w.frontendGap(), want)
			if got := w.frontendGap(); math.Abs(got-want) > 0.01 {
				t.Errorf("frontend gap = %.4f s, want %.4f s\n%s", got, want, w)
			}
		})
	}
}
