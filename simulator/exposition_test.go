package simulator

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// variants are the expositions under test: one server each, at a fixed seed and time.
var variants = []struct {
	name, fleet string
}{
	{"vllm-v1", "engine: vllm"},
	{"vllm-v0", "engine: vllm\n  metrics_version: v0"},
	{"sglang", "engine: sglang"},
	{"tgi", "engine: tgi"},
}

func variantServer(t *testing.T, fleet string) *Server {
	t.Helper()
	yml := "seed: 42\nservers:\n- " + fleet + `
  listen: 127.0.0.1:18000
  workload:
    rate: 3
    prompt_tokens: {mean: 900, cv: 0.5}
    output_tokens: {mean: 200, cv: 0.5}
    max_tokens: 512
    shared_prefix_fraction: 0.4
`
	cfg, err := ParseFleet("variant.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFleet(cfg, testStart)
	if err != nil {
		t.Fatal(err)
	}
	f.Advance(testStart.Add(5 * time.Minute))
	return f.Servers()[0]
}

func TestExpositionGolden(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := variantServer(t, v.fleet).WriteMetrics(&buf); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", v.name+".golden.prom")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("exposition differs from %s (run go test -update and review the diff)", path)
			}
		})
	}
}

// fam is one expected family, written from the engines' documented metrics: name, type, label names (without
// le/quantile) and, for histograms, the bucket bounds.
type fam struct {
	name    string
	typ     dto.MetricType
	labels  []string
	buckets []float64
}

const (
	counter = dto.MetricType_COUNTER
	gauge   = dto.MetricType_GAUGE
	histo   = dto.MetricType_HISTOGRAM
	summary = dto.MetricType_SUMMARY
)

func seq(from, step float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = from + step*float64(i)
	}
	return out
}

// geometric is 0.0001 x 1.5^k for k = 1..35, as TGI's launcher computes it.
func geometric() []float64 {
	out := make([]float64, 35)
	v := 0.0001
	for i := range out {
		v *= 1.5
		out[i] = v
	}
	return out
}

func linear(maxValue float64) []float64 {
	out := make([]float64, 100)
	for i := range out {
		out[i] = maxValue / 100 * float64(i+1)
	}
	return out
}

func catalog() map[string][]fam {
	v1 := []string{"engine", "model_name"}
	v0 := []string{"model_name"}
	ttft := []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	itl := []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	e2e := []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
	lens := []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000} // 1-2-5 up to max_model_len 8192
	iter := []float64{1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}
	cacheV1 := []string{"block_size", "cache_dtype", "calculate_kv_scales", "cpu_offload_gb", "enable_prefix_caching", "engine", "gpu_memory_utilization", "is_attention_free", "num_cpu_blocks", "num_gpu_blocks", "num_gpu_blocks_override", "prefix_caching_hash_algo", "sliding_window", "swap_space"}
	cacheV0 := []string{"block_size", "cache_dtype", "calculate_kv_scales", "cpu_offload_gb", "enable_prefix_caching", "gpu_memory_utilization", "is_attention_free", "num_cpu_blocks", "num_gpu_blocks", "num_gpu_blocks_override", "sliding_window", "swap_space_bytes"}
	v0iter := append([]float64{1, 2, 4}, seq(8, 8, 64)...)
	sched := []string{"engine_type", "model_name", "moe_ep_rank", "pp_rank", "tp_rank"}
	tok := []string{"engine_type", "model_name"}
	g := geometric()
	return map[string][]fam{
		"vllm-v1": {
			{"process_start_time_seconds", gauge, nil, nil},
			{"vllm:num_requests_running", gauge, v1, nil},
			{"vllm:num_requests_waiting", gauge, v1, nil},
			{"vllm:num_requests_waiting_by_reason", gauge, append(v1, "reason"), nil},
			{"vllm:kv_cache_usage_perc", gauge, v1, nil},
			{"vllm:prefix_cache_queries_total", counter, v1, nil},
			{"vllm:prefix_cache_hits_total", counter, v1, nil},
			{"vllm:num_preemptions_total", counter, v1, nil},
			{"vllm:prompt_tokens_total", counter, v1, nil},
			{"vllm:generation_tokens_total", counter, v1, nil},
			{"vllm:request_success_total", counter, append(v1, "finished_reason"), nil},
			{"vllm:request_prompt_tokens", histo, v1, lens},
			{"vllm:request_generation_tokens", histo, v1, lens},
			{"vllm:iteration_tokens_total", histo, v1, iter},
			{"vllm:request_max_num_generation_tokens", histo, v1, lens},
			{"vllm:request_params_n", histo, v1, []float64{1, 2, 5, 10, 20}},
			{"vllm:request_params_max_tokens", histo, v1, lens},
			{"vllm:time_to_first_token_seconds", histo, v1, ttft},
			{"vllm:inter_token_latency_seconds", histo, v1, itl},
			{"vllm:request_time_per_output_token_seconds", histo, v1, itl},
			{"vllm:e2e_request_latency_seconds", histo, v1, e2e},
			{"vllm:request_queue_time_seconds", histo, v1, e2e},
			{"vllm:request_inference_time_seconds", histo, v1, e2e},
			{"vllm:request_prefill_time_seconds", histo, v1, e2e},
			{"vllm:request_decode_time_seconds", histo, v1, e2e},
			{"vllm:cache_config_info", gauge, cacheV1, nil},
		},
		"vllm-v0": {
			{"vllm:num_requests_running", gauge, v0, nil},
			{"vllm:num_requests_swapped", gauge, v0, nil},
			{"vllm:num_requests_waiting", gauge, v0, nil},
			{"vllm:gpu_cache_usage_perc", gauge, v0, nil},
			{"vllm:cpu_cache_usage_perc", gauge, v0, nil},
			{"vllm:cpu_prefix_cache_hit_rate", gauge, v0, nil},
			{"vllm:gpu_prefix_cache_hit_rate", gauge, v0, nil},
			{"vllm:num_preemptions_total", counter, v0, nil},
			{"vllm:prompt_tokens_total", counter, v0, nil},
			{"vllm:generation_tokens_total", counter, v0, nil},
			{"vllm:request_success_total", counter, append(v0, "finished_reason"), nil},
			{"vllm:iteration_tokens_total", histo, v0, v0iter},
			{"vllm:time_to_first_token_seconds", histo, v0, ttft[:16]},
			{"vllm:time_per_output_token_seconds", histo, v0, itl[:13]},
			{"vllm:e2e_request_latency_seconds", histo, v0, []float64{1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60}},
			{"vllm:request_queue_time_seconds", histo, v0, []float64{1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60}},
			{"vllm:request_inference_time_seconds", histo, v0, []float64{1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60}},
			{"vllm:request_prefill_time_seconds", histo, v0, []float64{1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60}},
			{"vllm:request_decode_time_seconds", histo, v0, []float64{1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60}},
			{"vllm:request_prompt_tokens", histo, v0, lens},
			{"vllm:request_generation_tokens", histo, v0, lens},
			{"vllm:request_max_num_generation_tokens", histo, v0, lens},
			{"vllm:request_params_n", histo, v0, []float64{1, 2, 5, 10, 20}},
			{"vllm:request_params_max_tokens", histo, v0, lens},
			{"vllm:cache_config_info", gauge, cacheV0, nil},
		},
		"sglang": {
			{"sglang:num_running_reqs", gauge, sched, nil},
			{"sglang:num_queue_reqs", gauge, sched, nil},
			{"sglang:num_used_tokens", gauge, sched, nil},
			{"sglang:token_usage", gauge, sched, nil},
			{"sglang:max_total_num_tokens", gauge, sched, nil},
			{"sglang:gen_throughput", gauge, sched, nil},
			{"sglang:cache_hit_rate", gauge, sched, nil},
			{"sglang:new_token_ratio", gauge, sched, nil},
			{"sglang:num_retracted_reqs", gauge, sched, nil},
			{"sglang:num_retracted_requests_total", counter, sched, nil},
			{"sglang:num_retracted_input_tokens_total", counter, sched, nil},
			{"sglang:num_retracted_output_tokens_total", counter, sched, nil},
			{"sglang:queue_time_seconds", histo, sched, []float64{0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000}},
			{"sglang:prompt_tokens_total", counter, tok, nil},
			{"sglang:generation_tokens_total", counter, tok, nil},
			{"sglang:cached_tokens_total", counter, append(tok, "cache_source"), nil},
			{"sglang:num_requests_total", counter, tok, nil},
			{"sglang:num_aborted_requests_total", counter, tok, nil},
			{"sglang:time_to_first_token_seconds", histo, tok, []float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400}},
			{"sglang:inter_token_latency_seconds", histo, tok, []float64{0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8}},
			{"sglang:e2e_request_latency_seconds", histo, tok, []float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400}},
			{"sglang:prompt_tokens_histogram", histo, tok, []float64{100, 300, 500, 700, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000, 15000, 20000, 22000, 25000, 30000, 35000, 40000, 66000, 99000, 132000, 300000, 600000, 900000, 1100000}},
			{"sglang:generation_tokens_histogram", histo, tok, []float64{100, 300, 500, 700, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000, 15000, 20000, 22000, 25000, 30000, 35000, 40000, 66000, 99000, 132000, 300000, 600000, 900000, 1100000}},
		},
		"tgi": {
			{"tgi_request_count", counter, nil, nil},
			{"tgi_request_success", counter, nil, nil},
			{"tgi_request_failure", counter, []string{"err"}, nil},
			{"tgi_batch_concat", counter, []string{"reason"}, nil},
			{"tgi_batch_inference_count", counter, []string{"method"}, nil},
			{"tgi_batch_inference_success", counter, []string{"method"}, nil},
			{"tgi_batch_inference_failure", counter, []string{"method"}, nil},
			{"tgi_queue_size", gauge, nil, nil},
			{"tgi_batch_current_size", gauge, nil, nil},
			{"tgi_batch_current_max_tokens", gauge, nil, nil},
			{"tgi_batch_max_total_tokens", gauge, nil, nil},
			{"tgi_request_duration", histo, nil, g},
			{"tgi_request_validation_duration", histo, nil, g},
			{"tgi_request_queue_duration", histo, nil, g},
			{"tgi_request_inference_duration", histo, nil, g},
			{"tgi_request_mean_time_per_token_duration", histo, nil, g},
			{"tgi_request_generated_tokens", histo, nil, linear(8192)},
			{"tgi_request_input_length", histo, nil, linear(8191)},
			{"tgi_request_max_new_tokens", histo, nil, linear(8192)},
			{"tgi_request_skipped_tokens", summary, nil, nil},
			{"tgi_batch_next_size", histo, nil, seq(1, 1, 1024)},
			{"tgi_batch_inference_duration", histo, []string{"method"}, g},
			{"tgi_batch_forward_duration", histo, []string{"method"}, g},
			{"tgi_batch_decode_duration", histo, []string{"method"}, g},
			{"tgi_batch_filter_duration", histo, []string{"method"}, g},
			{"tgi_batch_concat_duration", histo, []string{"method"}, g},
		},
	}
}

func TestExpositionMatchesCatalog(t *testing.T) {
	cat := catalog()
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := variantServer(t, v.fleet).WriteMetrics(&buf); err != nil {
				t.Fatal(err)
			}
			parser := expfmt.NewTextParser(model.UTF8Validation)
			got, err := parser.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("exposition does not parse: %v", err)
			}
			want := cat[v.name]
			seen := map[string]bool{}
			for _, f := range want {
				seen[f.name] = true
				mf, ok := got[f.name]
				if !ok {
					t.Errorf("missing family %s", f.name)
					continue
				}
				if mf.GetType() != f.typ {
					t.Errorf("%s: type %v, want %v", f.name, mf.GetType(), f.typ)
				}
				for _, m := range mf.GetMetric() {
					var names []string
					for _, lp := range m.GetLabel() {
						names = append(names, lp.GetName())
					}
					sort.Strings(names)
					wantNames := slices.Sorted(slices.Values(f.labels))
					if !slices.Equal(names, wantNames) {
						t.Errorf("%s: labels %v, want %v", f.name, names, wantNames)
					}
					if f.typ == histo {
						var bounds []float64
						for _, b := range m.GetHistogram().GetBucket() {
							bounds = append(bounds, b.GetUpperBound())
						}
						if n := len(bounds); n == 0 || !math.IsInf(bounds[n-1], 1) {
							t.Errorf("%s: no +Inf bucket", f.name)
						} else {
							bounds = bounds[:n-1]
						}
						if !slices.Equal(bounds, f.buckets) {
							t.Errorf("%s: buckets %v\nwant %v", f.name, bounds, f.buckets)
						}
					}
				}
			}
			for name, mf := range got {
				if seen[name] {
					continue
				}
				base, isCreated := strings.CutSuffix(name, "_created")
				if v.name == "vllm-v1" && isCreated && mf.GetType() == gauge && (seen[base+"_total"] || seen[base]) {
					continue
				}
				t.Errorf("unexpected family %s", name)
			}
		})
	}
}

func TestTextFormatDetails(t *testing.T) {
	// Lines as the engines print them on /metrics.
	cases := []struct {
		variant, want string
	}{
		{"vllm-v1", `vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} `},
		{"vllm-v1", "# TYPE vllm:num_preemptions_created gauge\n"},
		{"vllm-v1", `vllm:request_success_total{engine="0",finished_reason="abort",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0` + "\n"},
		{"vllm-v1", `gpu_memory_utilization="0.9"`},
		{"vllm-v1", `enable_prefix_caching="True"`},
		{"vllm-v1", "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds "},
		{"vllm-v0", `vllm:cpu_prefix_cache_hit_rate{model_name="meta-llama/Llama-3.1-8B-Instruct"} -1.0` + "\n"},
		{"sglang", `sglang:num_running_reqs{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",moe_ep_rank="0",pp_rank="0",tp_rank="0"} `},
		{"sglang", "# TYPE sglang:time_to_first_token_seconds histogram\nsglang:time_to_first_token_seconds_sum{"},
		{"tgi", "\n\n# HELP tgi_request_success Number of successful requests\n# TYPE tgi_request_success counter\ntgi_request_success "},
		{"tgi", "# TYPE tgi_request_failure counter\ntgi_request_failure{err=\"validation\"} 0\n"},
		{"tgi", `tgi_request_duration_bucket{le="0.00015000000000000001"} `},
		{"tgi", `tgi_request_duration_bucket{le="145.61096060497135"} `},
		{"tgi", `tgi_batch_forward_duration_bucket{method="decode",le="0.0003375"} `},
		{"tgi", "tgi_request_skipped_tokens{quantile=\"0.999\"} 0\n"},
	}
	out := map[string]string{}
	for _, v := range variants {
		var buf bytes.Buffer
		if err := variantServer(t, v.fleet).WriteMetrics(&buf); err != nil {
			t.Fatal(err)
		}
		out[v.name] = buf.String()
	}
	for _, c := range cases {
		if !strings.Contains(out[c.variant], c.want) {
			t.Errorf("%s exposition lacks %q", c.variant, c.want)
		}
	}
	for _, v := range []string{"vllm-v0", "sglang", "tgi"} {
		if strings.Contains(out[v], "_created") {
			t.Errorf("%s must not print _created series", v)
		}
		if strings.Contains(out[v], "process_") {
			t.Errorf("%s has no process metrics", v)
		}
	}
	if strings.Contains(out["tgi"], "_total ") || strings.Contains(out["tgi"], "_total{") {
		t.Error("TGI counters have no _total suffix")
	}
}

func TestFloatFormats(t *testing.T) {
	py := []struct {
		v    float64
		want string
	}{
		{8, "8.0"},
		{0, "0.0"},
		{0.1, "0.1"},
		{-1, "-1.0"},
		{1.7537953269352946e9, "1.7537953269352946e+09"},
		{8128902, "8.128902e+06"},
		{1048576, "1.048576e+06"},
		{123456, "123456.0"},
		{12345678901, "1.2345678901e+010"},
		{0.007507552643049313, "0.007507552643049313"},
		{1e-05, "1e-05"},
		{2.3518979474117756e6, "2.3518979474117756e+06"},
	}
	for _, c := range py {
		if got := pyFloat(c.v); got != c.want {
			t.Errorf("pyFloat(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	// Values from the TGI 3.3.5 capture: max_input_tokens 511, max_total_tokens 512.
	if got := rustFloat(tgiLinearBuckets(511)[2]); got != "15.330000000000002" {
		t.Errorf("TGI linear bucket = %s", got)
	}
	if got := rustFloat(tgiLinearBuckets(512)[99]); got != "512" {
		t.Errorf("TGI linear bucket = %s", got)
	}
	if got := rustFloat(tgiLinearBuckets(512)[94]); got != "486.40000000000003" {
		t.Errorf("TGI linear bucket = %s", got)
	}
	d := tgiDurationBuckets()
	if got := rustFloat(d[5]); got != "0.0011390624999999999" {
		t.Errorf("TGI duration bucket = %s", got)
	}
}
