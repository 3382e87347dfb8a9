package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
