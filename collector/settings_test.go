package collector

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

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
	mux.HandleFunc("/props", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"default_generation_settings":{"n_ctx":8192,"temperature":0.8},"total_slots":4,"model_path":"models/qwen2.5-7b-instruct-q4_k_m.gguf","chat_template":"","build_info":"b5100-1a2b3c4d"}`))
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
		// llama-server's slots (--parallel) and model file; n_ctx is nested per slot and not read.
		{signals.EngineLlamaCpp, map[string]string{"served_model_name": "models/qwen2.5-7b-instruct-q4_k_m.gguf", "n_parallel": "4"}},
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
		"odd:1":  {BaseURL: srv.URL, Engine: "mlc"}, // no known endpoint: not probed
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

// TestTRTLLMSettingsFromGauges: the TensorRT-LLM backend's request cap and
// KV block counts are gauges told apart by a label; every other series of
// the query's families is ignored.
func TestTRTLLMSettingsFromGauges(t *testing.T) {
	series := func(name, label, value string, v float64) promql.Sample {
		return promql.Sample{Metric: labels.FromStrings("__name__", name, label, value, "instance", "t:8002", "model", "tensorrt_llm", "version", "1"), F: v}
	}
	vec := promql.Vector{
		series("nv_trt_llm_request_metrics", "request_type", "max", 64),
		series("nv_trt_llm_request_metrics", "request_type", "active", 12),
		series("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "max", 8000),
		series("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "tokens_per", 64),
		series("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "used", 100),
	}
	q := builtinSettingsQueries()[signals.EngineTRTLLM]
	if _, err := NewParser().ParseExpr(q.expr); err != nil {
		t.Fatalf("parsing %s: %v", q.expr, err)
	}
	got := q.extract(vec)
	want := map[string]map[string]string{"t:8002": {"max_batch_size": "64", "max_num_blocks": "8000", "tokens_per_block": "64"}}
	if len(got) != 1 || !maps.Equal(got["t:8002"], want["t:8002"]) {
		t.Errorf("settings = %v, want %v", got, want)
	}
	s := Settings{}
	s.merge(got["t:8002"], SettingFromMetrics)
	for _, ss := range settingSignals() {
		if ss.name != signals.MaxRunningRequests {
			continue
		}
		if v, ok := ss.value(signals.EngineTRTLLM, s); !ok || v != 64 {
			t.Errorf("%s = %v, %v; want 64", ss.name, v, ok)
		}
	}
}
