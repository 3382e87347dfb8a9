package simulator

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func testServer(t *testing.T, engine string) (*Fleet, *Server, *httptest.Server) {
	t.Helper()
	cfg := oneServer(t, "engine: "+engine+"\n  workload: {rate: 4}")
	f, err := NewFleet(cfg, testStart)
	if err != nil {
		t.Fatal(err)
	}
	f.Advance(testStart.Add(2 * time.Minute))
	s := f.Servers()[0]
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return f, s, ts
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	cases := []struct {
		engine, path string
		want         []string
	}{
		{"vllm", "/metrics", []string{"vllm:num_requests_running{", "vllm:cache_config_info{"}},
		{"vllm", "/v1/models", []string{`"id": "meta-llama/Llama-3.1-8B-Instruct"`, `"max_model_len": 8192`, `"owned_by": "vllm"`}},
		{"vllm", "/health", nil},
		{"sglang", "/metrics", []string{"sglang:token_usage{"}},
		{"sglang", "/get_server_info", []string{`"mem_fraction_static"`, `"max_running_requests"`, `"chunked_prefill_size": 8192`, `"schedule_conservativeness": 1`, `"max_total_num_tokens"`}},
		{"tgi", "/metrics", []string{"tgi_queue_size "}},
		{"tgi", "/info", []string{`"model_id"`, `"max_concurrent_requests": 128`, `"max_batch_total_tokens"`, `"max_batch_prefill_tokens"`, `"max_total_tokens": 8192`, `"max_input_tokens": 8191`}},
		{"tgi", "/admin/state", []string{`"running"`, `"kv_capacity_tokens"`, `"settings"`, `"workload"`}},
	}
	for _, c := range cases {
		t.Run(c.engine+c.path, func(t *testing.T) {
			_, _, ts := testServer(t, c.engine)
			code, body := do(t, http.MethodGet, ts.URL+c.path, "")
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q", w)
				}
			}
		})
	}
}

func TestAdminSettingsRecomputesCapacity(t *testing.T) {
	_, s, ts := testServer(t, "vllm")
	before := s.State().KVCapacityTokens
	code, body := do(t, http.MethodPost, ts.URL+"/admin/settings", `{"gpu_memory_utilization": 0.95, "max_num_seqs": 64}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var st State
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.KVCapacityTokens <= before || st.MaxRunning != 64 || st.Settings.GPUMemoryUtilization != 0.95 {
		t.Errorf("capacity %d -> %d, max running %d, settings %+v", before, st.KVCapacityTokens, st.MaxRunning, st.Settings)
	}
	_, metrics := do(t, http.MethodGet, ts.URL+"/metrics", "")
	if !strings.Contains(metrics, `gpu_memory_utilization="0.95"`) {
		t.Error("cache_config_info does not show the new gpu_memory_utilization")
	}
}

func TestAdminWorkload(t *testing.T) {
	f, s, ts := testServer(t, "sglang")
	code, body := do(t, http.MethodPost, ts.URL+"/admin/workload", `{"rate": 40, "prompt_tokens": {"mean": 2000}}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if w := s.State().Workload; w.Rate != 40 || w.PromptTokens.Mean != 2000 || w.OutputTokens.Mean != 256 {
		t.Errorf("workload after partial update: %+v", w)
	}
	before := s.State().Counters.Arrived
	f.Advance(testStart.Add(3 * time.Minute))
	if got := s.State().Counters.Arrived - before; got < 40*60*0.8 {
		t.Errorf("%v arrivals in a minute at 40 req/s", got)
	}
}

func TestAdminRejectsBadBodies(t *testing.T) {
	cases := []struct {
		engine, path, body string
		code               int
		field              string
	}{
		{"vllm", "/admin/settings", `{"gpu_memory_utilization": 2}`, 400, "gpu_memory_utilization"},
		{"vllm", "/admin/settings", `{"gpu_memory_utilisation": 0.9}`, 400, "gpu_memory_utilisation"},
		{"vllm", "/admin/settings", `[1, 2]`, 400, ""},
		{"vllm", "/admin/settings", `{"max_running_requests": 4}`, 400, "max_running_requests"},
		{"vllm", "/admin/settings", `{"max_num_seqs": "many"}`, 400, "max_num_seqs"},
		{"vllm", "/admin/settings", `{"gpu_memory_utilization": 0.1}`, 400, "gpu_memory_utilization"},
		{"tgi", "/admin/settings", `{"max_total_tokens": -1}`, 400, "max_total_tokens"},
		{"sglang", "/admin/workload", `{"rate": -5}`, 400, "rate"},
		{"sglang", "/admin/workload", `{"timeout": "soon"}`, 400, "timeout"},
		{"sglang", "/admin/workload", `{"prompt_tokens": {"mean": 10, "median": 5}}`, 400, "prompt_tokens"},
		{"sglang", "/admin/workload", `{"rate": 1} {"rate": 2}`, 400, ""},
		{"sglang", "/admin/workload", `not json`, 400, ""},
		{"sglang", "/admin/workload", `{"rate": 1, "pad": "` + strings.Repeat("x", 70<<10) + `"}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.engine+c.path+c.body[:min(len(c.body), 30)], func(t *testing.T) {
			_, s, ts := testServer(t, c.engine)
			before := s.State()
			code, body := do(t, http.MethodPost, ts.URL+c.path, c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %s", code, c.code, body)
			}
			var fe FieldError
			if err := json.Unmarshal([]byte(body), &fe); err != nil || fe.Msg == "" {
				t.Fatalf("want a JSON error, got %q", body)
			}
			if fe.Field != c.field {
				t.Errorf("field %q, want %q (%s)", fe.Field, c.field, fe.Msg)
			}
			after := s.State()
			if after.KVCapacityTokens != before.KVCapacityTokens || after.Workload.Rate != before.Workload.Rate {
				t.Error("a rejected change was applied")
			}
		})
	}
	_, _, ts := testServer(t, "vllm")
	if code, _ := do(t, http.MethodGet, ts.URL+"/admin/settings", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /admin/settings: %d, want 405", code)
	}
}

func TestEventsChangeSettings(t *testing.T) {
	cfg := oneServer(t, `engine: vllm
  workload: {rate: 2}
  events:
    - at: 1m
      settings: {max_num_seqs: 8}
    - at: 2m
      workload: {rate: 0}`)
	f, err := NewFleet(cfg, testStart)
	if err != nil {
		t.Fatal(err)
	}
	s := f.Servers()[0]
	f.Advance(testStart.Add(90 * time.Second))
	if got := s.State().MaxRunning; got != 8 {
		t.Errorf("max running after the event = %d, want 8", got)
	}
	f.Advance(testStart.Add(3 * time.Minute))
	a := s.State().Counters.Arrived
	f.Advance(testStart.Add(10 * time.Minute))
	if b := s.State().Counters.Arrived; b != a {
		t.Errorf("arrivals continued at rate 0: %v -> %v", a, b)
	}
}

// metricValue sums the samples of a counter or gauge family on a /metrics page.
func metricValue(t *testing.T, page, name string) float64 {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return sum
}

func TestAdminRestartResetsCounters(t *testing.T) {
	cases := []struct {
		engine  string
		counter string // a counter on /metrics
	}{
		{"vllm", "vllm:generation_tokens_total"},
		{"sglang", "sglang:generation_tokens_total"},
		{"tgi", "tgi_request_count"},
	}
	for _, c := range cases {
		t.Run(c.engine, func(t *testing.T) {
			f, s, ts := testServer(t, c.engine)
			// A settings change keeps counting; only a restart resets.
			before := s.State()
			if code, body := do(t, http.MethodPost, ts.URL+"/admin/settings", "{}"); code != http.StatusOK {
				t.Fatalf("POST /admin/settings: status %d: %s", code, body)
			}
			if got := s.State(); got.Counters != before.Counters || got.Started != testStart {
				t.Errorf("a settings change reset the counters or the start: %+v, then %+v", before, got)
			}
			f.Advance(before.Time.Add(30 * time.Second))
			before = s.State()
			if before.Counters.Arrived == 0 || before.Counters.GenerationTokens == 0 || before.Running == 0 {
				t.Fatalf("nothing counted or running before the restart: %+v", before)
			}
			code, body := do(t, http.MethodPost, ts.URL+"/admin/restart", "")
			if code != http.StatusOK {
				t.Fatalf("POST /admin/restart: status %d: %s", code, body)
			}
			var st State
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatal(err)
			}
			// Histograms are not in the JSON state.
			if h := s.State(); st.Counters != (Counters{}) || h.E2E.Count != 0 || h.Queue.Count != 0 {
				t.Errorf("after the restart: counters %+v, e2e count %d, queue count %d; want zero", st.Counters, h.E2E.Count, h.Queue.Count)
			}
			if st.Running != 0 || st.Waiting != before.Waiting+before.Running {
				t.Errorf("after the restart: %d running, %d waiting; the %d in flight go back to the queue", st.Running, st.Waiting, before.Running)
			}
			if !st.Started.Equal(st.Time) || !st.Started.After(testStart) {
				t.Errorf("process started at %v, want the restart time %v", st.Started, st.Time)
			}
			_, page := do(t, http.MethodGet, ts.URL+"/metrics", "")
			if got := metricValue(t, page, c.counter); got != 0 {
				t.Errorf("%s = %v right after the restart, want 0", c.counter, got)
			}
			if c.engine == "vllm" {
				if got, want := metricValue(t, page, "process_start_time_seconds"), math.Round(float64(st.Started.UnixNano())/1e7)/100; got != want {
					t.Errorf("process_start_time_seconds = %v, want %v", got, want)
				}
			}

			f.Advance(st.Time.Add(time.Minute))
			_, page = do(t, http.MethodGet, ts.URL+"/metrics", "")
			if got := metricValue(t, page, c.counter); got <= 0 {
				t.Errorf("%s = %v a minute after the restart, want it counting again", c.counter, got)
			}
			if after := s.State(); after.Counters.Arrived == 0 || !after.Started.Equal(st.Started) {
				t.Errorf("a minute after the restart: %v arrivals, start %v (was %v)", after.Counters.Arrived, after.Started, st.Started)
			}
		})
	}
}
