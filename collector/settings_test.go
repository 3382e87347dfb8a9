package collector

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optiinfra/perfagent/signals"
)

func infoServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/models", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"llama-8b","object":"model","max_model_len":8192}]}`))
	})
	mux.HandleFunc("/get_server_info", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"model_path":"Qwen/Qwen3-8B","mem_fraction_static":0.88,"max_running_requests":256,"chunked_prefill_size":8192,"schedule_conservativeness":1.0,"max_total_num_tokens":420000,"enable_metrics":true,"unrelated":{"nested":1}}`))
	})
	mux.HandleFunc("/info", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"model_id":"mistralai/Mistral-7B-Instruct-v0.3","max_concurrent_requests":128,"max_batch_total_tokens":null,"max_batch_prefill_tokens":4096,"max_total_tokens":4096,"max_input_tokens":4095,"version":"3.3.5"}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestProbeReadsInfoEndpoints(t *testing.T) {
	srv := infoServer(t)
	p := NewProber(time.Minute, time.Second, testMetrics())
	tests := []struct {
		engine string
		want   map[string]string
	}{
		{signals.EngineVLLM, map[string]string{"served_model_name": "llama-8b", "max_model_len": "8192"}},
		{signals.EngineSGLang, map[string]string{"model_path": "Qwen/Qwen3-8B", "mem_fraction_static": "0.88", "max_running_requests": "256", "chunked_prefill_size": "8192", "schedule_conservativeness": "1", "max_total_num_tokens": "420000"}},
		// A null value (TGI computes max_batch_total_tokens at warm-up) is no setting.
		{signals.EngineTGI, map[string]string{"served_model_name": "mistralai/Mistral-7B-Instruct-v0.3", "max_concurrent_requests": "128", "max_batch_prefill_tokens": "4096", "max_total_tokens": "4096", "max_input_tokens": "4095", "version": "3.3.5"}},
	}
	for _, tc := range tests {
		t.Run(tc.engine, func(t *testing.T) {
			got, err := p.Probe(context.Background(), ProbeTarget{BaseURL: srv.URL, Engine: tc.engine})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestProbeRefreshCachesAndCountsFailures(t *testing.T) {
	srv := infoServer(t)
	m := testMetrics()
	p := NewProber(time.Minute, time.Second, m)
	targets := map[string]ProbeTarget{
		"ok:1":   {BaseURL: srv.URL, Engine: signals.EngineSGLang},
		"gone:1": {BaseURL: "http://127.0.0.1:1", Engine: signals.EngineTGI},
		"odd:1":  {BaseURL: srv.URL, Engine: "llamacpp"}, // no known endpoint: not probed
	}
	p.Refresh(context.Background(), t0, targets)
	p.Wait()
	if got := p.Settings("ok:1")["max_running_requests"]; got != "256" {
		t.Errorf("cached max_running_requests = %q, want 256", got)
	}
	if got := testutil.ToFloat64(m.ProbeFailures); got != 1 {
		t.Errorf("probe failures = %g, want 1", got)
	}
	// Within the interval nothing is probed again.
	srv.Close()
	p.Refresh(context.Background(), t0.Add(30*time.Second), targets)
	p.Wait()
	if got := testutil.ToFloat64(m.ProbeFailures); got != 1 {
		t.Errorf("probe failures after a refresh within the interval = %g, want 1", got)
	}
	// After it, a failed probe keeps the last good settings.
	p.Refresh(context.Background(), t0.Add(2*time.Minute), targets)
	p.Wait()
	if got := testutil.ToFloat64(m.ProbeFailures); got != 3 {
		t.Errorf("probe failures = %g, want 3", got)
	}
	if got := p.Settings("ok:1")["max_running_requests"]; got != "256" {
		t.Errorf("settings after a failed probe = %q, want the last good 256", got)
	}
}
