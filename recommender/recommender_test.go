package recommender

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/collector"
)

const llama = "meta-llama/Llama-3.1-8B-Instruct"

// llamaConfig describes Llama-3.1-8B on an 80 GiB GPU.
func llamaConfig() Config {
	cfg := DefaultConfig()
	cfg.Models = []ModelConfig{{Name: llama, Parameters: 8.03e9, Layers: 32, KVHeads: 8, HeadDim: 128, DTypeBytes: 2, GPUMemoryBytes: 80 * gib}}
	return cfg
}

func ev(name, value, source string) Evidence {
	return Evidence{Name: name, Value: value, Source: source, Time: testNow}
}

func evq(name, q, value string) Evidence {
	return Evidence{Name: name, Quantile: q, Value: value, Source: "signal", Time: testNow}
}

// vllmB1 is a vLLM instance under KV pressure: 20480 blocks × 16 =
// 327680 tokens, 95 % used, 2 preemptions/s.
func vllmB1() *collector.Instance {
	return &collector.Instance{
		Instance: "gpu-0:8000", Engine: collector.EngineVLLM, Model: llama,
		Settings: settings(collector.SettingFromMetrics, "gpu_memory_utilization", "0.9", "num_gpu_blocks", "20480", "block_size", "16", "cache_dtype", "auto"),
		Signals: []collector.SignalValue{
			sig(sigKVCapacity, "", 327680), sig(sigKVUsage, "", 0.95), sig(sigPreemptions, "", 2),
			sig(sigRunning, "", 200), sig(sigWaiting, "", 20), sig(sigPromptMean, "", 1000), sig(sigGenMean, "", 400),
		},
	}
}

func finding(b, rule string, inst *collector.Instance, value float64, ids ...string) Finding {
	return Finding{Bottleneck: b, Rule: rule, Instance: inst.Instance, Engine: inst.Engine, Model: inst.Model, Recommend: ids, Since: testNow.Add(-10 * time.Minute), Value: value}
}

func fev(b, rule, value string) Evidence {
	return Evidence{Name: b + " " + rule, Value: value, Source: "finding", Time: testNow.Add(-10 * time.Minute)}
}

func TestRaiseGPUMemoryUtilizationLlama8B(t *testing.T) {
	inst := vllmB1()
	r := newTestRecommender(t, llamaConfig())
	got := r.Recommend(testNow, Input{
		Instances: []*collector.Instance{inst},
		Findings:  []Finding{finding("B1", "LLMKVCachePressure", inst, 2, "raise_gpu_memory_utilization")},
	})
	// f' = min(0.95, 0.9 + ((1 − 0.9) × 80 GiB − 4 GiB)/80 GiB) = min(0.95, 0.9 + 4/80) = 0.95.
	// kv_bytes/token = 2 × 32 × 8 × 128 × 2 = 131072 B.
	// extra = 0.05 × 85899345920 / 131072 = 4294967296 / 131072 = 32768 tokens.
	// N' = 327680 + 32768 = 360448; usage 0.95 × 327680 / 360448 = 0.95 × 10/11 = 0.863636.
	// Demand (200 + 20) × (1000 + 400/2) = 264000 ≤ 0.9 × 360448 = 324403.2: preemptions → 0.
	// Confidence: method 1 × inputs 0.9 (model shape from the configuration) = 0.9.
	want := []Recommendation{{
		ID: "raise_gpu_memory_utilization", Rank: 1, Instance: "gpu-0:8000", Engine: "vllm", Model: llama,
		Bottlenecks: []string{"B1"},
		Action:      Action{Kind: KindFlag, Flag: "--gpu-memory-utilization", Setting: "gpu_memory_utilization", Current: "0.9", Proposed: "0.95", Unit: "ratio"},
		Effects: []Effect{
			{Signal: sigKVCapacity, Direction: Increase, Current: ptr(327680), Estimate: ptr(360448)},
			{Signal: sigKVUsage, Direction: Decrease, Current: ptr(0.95), Estimate: ptr(0.863636)},
			{Signal: sigPreemptions, Direction: Decrease, Current: ptr(2), Estimate: ptr(0)},
		},
		Confidence: 0.9,
		Factors: []Factor{
			{Name: "method", Value: 1, Reason: "KV capacity formula (tuning.md §6)"},
			{Name: "inputs", Value: 0.9, Reason: "lowest-weighted input: model_shape from model"},
		},
		Risk: "Less memory left for activation peaks and CUDA-graph capture (OOM); breaks other processes sharing the GPU.",
		Evidence: []Evidence{
			fev("B1", "LLMKVCachePressure", "2"),
			ev("gpu_memory_utilization", "0.9", "metrics"),
			ev("model_shape", "layers=32 kv_heads=8 head_dim=128 dtype_bytes=2", "model"),
			ev("gpu_memory_bytes", "85899345920", "model"),
			ev("cache_dtype", "auto", "metrics"),
			evq(sigKVCapacity, "", "327680"),
			evq(sigKVUsage, "", "0.95"),
			evq(sigPreemptions, "", "2"),
			evq(sigRunning, "", "200"),
			evq(sigWaiting, "", "20"),
			evq(sigPromptMean, "", "1000"),
			evq(sigGenMean, "", "400"),
		},
		Rationale: "gpu_memory_utilization' = min(0.95, 0.9 + ((1 − 0.9) × 80 GiB − 4 GiB reserved) / 80 GiB) = 0.95. The added 4 GiB all go to the KV cache. " +
			"kv_bytes/token = 2 × 32 layers × 8 KV heads × 128 head_dim × 2 B / TP 1 = 131072 B; extra tokens = ⌊0.05 × 85899345920 B / 131072 B⌋ = 32768. " +
			"N_kv 327680 → 360448 tokens. KV usage 0.95 × 327680 / 360448 = 0.863636. " +
			"Present demand (R 200 + W 20) × r̄ 1200 = 264000 tokens fits 0.9 × 360448, so preemptions should stop.",
		Time: testNow,
	}}
	assertRecs(t, got, want)
}

func linearHistory(alpha, beta float64, batches ...float64) []Point {
	var out []Point
	for i, b := range batches {
		out = append(out, Point{Time: testNow.Add(time.Duration(i-len(batches)) * 15 * time.Second), Running: b, ITL: alpha + beta*b})
	}
	return out
}

func TestAnalyze(t *testing.T) {
	vllmB3 := &collector.Instance{
		Instance: "gpu-1:8000", Engine: collector.EngineVLLM, Model: llama,
		Settings: settings(collector.SettingFromConfig, "max_num_seqs", "128"),
		Signals: []collector.SignalValue{
			sig(sigKVCapacity, "", 327680), sig(sigKVUsage, "", 0.5), sig(sigRunning, "", 128), sig(sigWaiting, "", 30),
			sig(sigPromptMean, "", 1000), sig(sigGenMean, "", 400), sig(sigITL, p95, 0.0484),
		},
	}
	tgi := &collector.Instance{
		Instance: "tgi-0:80", Engine: collector.EngineTGI, Model: "bigcode/starcoder2",
		Settings: settings(collector.SettingFromProbe, "max_concurrent_requests", "2"),
		Signals:  []collector.SignalValue{sig(sigRPS, "", 1), sig(sigRunning, "", 2), sig(sigWaiting, "", 4), sig(sigQueue, p95, 8)},
	}
	vllmB4B8 := &collector.Instance{
		Instance: "gpu-2:8000", Engine: collector.EngineVLLM, Model: llama,
		Settings: settings(collector.SettingFromProbe, "max_num_batched_tokens", "2048", "max_num_seqs", "256"),
		Signals: []collector.SignalValue{
			sig(sigRunning, "", 10), sig(sigPromptMean, "", 3000), sig(sigTTFT, p95, 2), sig(sigTTFT, "0.99", 9), sig(sigITL, p95, 0.03),
		},
	}
	sglang := &collector.Instance{
		Instance: "sg-0:30000", Engine: collector.EngineSGLang, Model: llama,
		Settings: settings(collector.SettingFromProbe, "mem_fraction_static", "0.85", "max_running_requests", "256"),
		Signals: []collector.SignalValue{
			sig(sigKVCapacity, "", 400000), sig(sigKVUsage, "", 0.97), sig(sigPreemptions, "", 0.5),
			sig(sigRunning, "", 250), sig(sigWaiting, "", 40), sig(sigPromptMean, "", 1000), sig(sigGenMean, "", 400),
		},
	}
	runAnalyze(t, []analyzeCase{
		{
			name: "B3 raise max_num_seqs to min(C_kv, B*) from the ITL fit",
			cfg:  llamaConfig(),
			in: Input{
				Instances: []*collector.Instance{vllmB3},
				History:   map[string][]Point{"gpu-1:8000": linearHistory(0.01, 0.0003, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200)},
				Findings:  []Finding{finding("B3", "LLMConcurrencyCapBound", vllmB3, 128, "raise_max_num_seqs", "raise_max_running_requests")},
			},
			// C_kv = ⌊0.9 × 327680 / (1000 + 400/2)⌋ = ⌊245.76⌋ = 245.
			// Fit: α = 0.01, β = 0.0003, R² = 1 over 10 points; B* = ⌊0.04 / 0.0003⌋ = 133, inside 20..200.
			// Proposed min(245, 133) = 133 > 128. Running min(128 + 30, 133) = 133, waiting 158 − 133 = 25,
			// ITL 0.01 + 0.0003 × 133 = 0.0499.
			// Confidence: data 1 × 10/30 = 0.3333, range 1, method 1, inputs 0.9 (max_num_seqs from the
			// configuration file): 0.3333 × 0.9 = 0.29997 → 0.3.
			want: Report{
				Recommendations: []Recommendation{{
					ID: "raise_max_num_seqs", Rank: 1, Instance: "gpu-1:8000", Engine: "vllm", Model: llama,
					Bottlenecks: []string{"B3"},
					Action:      Action{Kind: KindFlag, Flag: "--max-num-seqs", Setting: "max_num_seqs", Current: "128", Proposed: "133", Unit: "requests"},
					Effects: []Effect{
						{Signal: sigRunning, Direction: Increase, Current: ptr(128), Estimate: ptr(133)},
						{Signal: sigWaiting, Direction: Decrease, Current: ptr(30), Estimate: ptr(25)},
						{Signal: sigITL, Quantile: p95, Direction: Increase, Current: ptr(0.0484), Estimate: ptr(0.0499)},
					},
					Confidence: 0.3,
					Factors: []Factor{
						{Name: "data", Value: 0.3333, Reason: "ITL fit R² 1 × min(1, 10 points / 30)"},
						{Name: "range", Value: 1, Reason: "B* 133 against observed batch 20..200"},
						{Name: "method", Value: 1, Reason: "KV concurrency and the ITL fit (tuning.md §6)"},
						{Name: "inputs", Value: 0.9, Reason: "lowest-weighted input: max_num_seqs from config"},
					},
					Risk: "ITL rises linearly with the batch (B5); above the KV-supported concurrency, preemptions (B1).",
					Evidence: []Evidence{
						fev("B3", "LLMConcurrencyCapBound", "128"),
						ev("max_num_seqs", "128", "config"),
						{Name: "itl_fit", Value: "α=0.01 β=0.0003 R²=1 n=10 batch 20..200", Source: "history", Time: testNow.Add(-15 * time.Second)},
						evq(sigKVCapacity, "", "327680"),
						evq(sigPromptMean, "", "1000"),
						evq(sigGenMean, "", "400"),
						evq(sigRunning, "", "128"),
						evq(sigWaiting, "", "30"),
						evq(sigITL, p95, "0.0484"),
					},
					Rationale: "Proposed = min(C_kv = ⌊0.9 × N_kv 327680 / r̄ 1200⌋ = 245, r̄ = prompt 1000 + output 400/2 = 1200 tokens; " +
						"B* = ⌊(ITL target 0.05 − α 0.01) / β 0.0003⌋ = 133). Running min(R 128 + W 30, 133) = 133. Predicted ITL at 133 = 0.0499.",
					Time: testNow,
				}},
				Skipped: []Skip{{ID: "raise_max_running_requests", Instance: "gpu-1:8000", Engine: "vllm", Model: llama, Reason: "not applicable to vllm: see raise_max_num_seqs."}},
			},
		},
		{
			name: "B2 scale out with Little's law and Erlang C",
			cfg:  DefaultConfig(),
			in: Input{
				Instances:  []*collector.Instance{tgi},
				Objectives: Objectives{QueueWaitP95Seconds: 5},
				Findings:   []Finding{finding("B2", "LLMRequestQueueing", tgi, 4, "scale_out", "raise_max_concurrent_requests", "lower_schedule_conservativeness")},
			},
			// S = R/λ = 2/1 = 2 s; c = max_concurrent_requests = 2.
			// n = 1: a = 1 × 2 = 2 = c, ρ = 1: unstable.
			// n = 2: λ = 0.5/s per replica, a = 1, ρ = 0.5; C(2, 1) = 1/3 (Erlang B: 0.5, 0.2; 0.2/(1 − 0.5 × 0.8));
			// cμ − λ = 2/2 − 0.5 = 0.5; p95 wait = ln((1/3)/0.05)/0.5 = 2 ln(20/3) = 3.79424 ≤ 5.
			// Lq = λ Wq = 0.5 × (1/3)/0.5 = 1/3. Confidence: method 0.8 × inputs 1.
			want: Report{
				Recommendations: []Recommendation{{
					ID: "scale_out", Rank: 1, Engine: "tgi", Model: "bigcode/starcoder2",
					Bottlenecks: []string{"B2"},
					Action:      Action{Kind: KindReplicas, From: 1, To: 2, Instances: []string{"tgi-0:80"}},
					Effects: []Effect{
						{Signal: sigQueue, Quantile: p95, Direction: Decrease, Current: ptr(8), Estimate: ptr(round(2*math.Log(20.0/3), 6))},
						{Signal: sigWaiting, Direction: Decrease, Current: ptr(4), Estimate: ptr(round(1.0/3, 6))},
					},
					Confidence: 0.8,
					Factors: []Factor{
						{Name: "method", Value: 0.8, Reason: "M/M/c assumes Poisson arrivals and exponential service"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk: "Over-provisioning; new replicas take minutes to become ready.",
					Evidence: []Evidence{
						fev("B2", "LLMRequestQueueing", "4"),
						evq("tgi-0:80 "+sigRPS, "", "1"),
						evq("tgi-0:80 "+sigRunning, "", "2"),
						evq("tgi-0:80 "+sigWaiting, "", "4"),
						ev("tgi-0:80 max_concurrent_requests", "2", "probe"),
					},
					Rationale: "Little's law: S = ΣR 2 / Σλ 1/s = 2s per request; c = max_concurrent_requests of tgi-0:80 = 2; target p95 queue wait 5s (objective). " +
						"The fewest replicas with ρ = λS/(n·c) ≤ 0.9 and Erlang-C p95 wait ≤ target: n = 2 (ρ = 0.5, p95 wait 3.79424s).",
					Notes: []string{"no ITL fit for tgi-0:80: 0 history points, 5 needed"},
					Time:  testNow,
				}},
				Skipped: []Skip{
					{ID: "lower_schedule_conservativeness", Instance: "tgi-0:80", Engine: "tgi", Model: "bigcode/starcoder2", Reason: "not applicable to tgi: TGI has no admission estimate."},
					{ID: "raise_max_concurrent_requests", Instance: "tgi-0:80", Engine: "tgi", Model: "bigcode/starcoder2", Reason: "needs the KV capacity and mean prompt and output tokens of tgi-0:80"},
				},
			},
		},
		{
			name: "B4 and B8 conflict on max_num_batched_tokens: B4 comes first in the triage order",
			cfg:  DefaultConfig(),
			in: Input{
				Instances: []*collector.Instance{vllmB4B8},
				// B8 listed first: the triage order, not the input order, decides.
				Findings: []Finding{
					finding("B8", "LLMHeadOfLineBlocking", vllmB4B8, 4.5, "long_prefill_threshold", "lower_max_num_batched_tokens"),
					finding("B4", "LLMPrefillBoundTTFT", vllmB4B8, 2, "raise_max_num_batched_tokens", "enable_prefix_caching"),
				},
			},
			// Raise: 3000 + 10 = 3010 > 2048 → next power of two 4096; now ⌈3000 / 2038⌉ = 2 steps.
			// Lower: max(2048/2, max_num_seqs 256) = 1024, dropped.
			// Confidence: method 0.8 × inputs 1.
			want: Report{
				Recommendations: []Recommendation{{
					ID: "raise_max_num_batched_tokens", Rank: 1, Instance: "gpu-2:8000", Engine: "vllm", Model: llama,
					Bottlenecks: []string{"B4"},
					Action:      Action{Kind: KindFlag, Flag: "--max-num-batched-tokens", Setting: "max_num_batched_tokens", Current: "2048", Proposed: "4096", Unit: "tokens"},
					Effects: []Effect{
						{Signal: sigTTFT, Quantile: p95, Direction: Decrease, Current: ptr(2)},
						{Signal: sigITL, Quantile: p95, Direction: Increase, Current: ptr(0.03)},
					},
					Confidence: 0.8,
					Factors: []Factor{
						{Name: "method", Value: 0.8, Reason: "sized from the mean prompt; the size of the TTFT gain is not modelled"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk: "Bigger prefill chunks stall decodes, so ITL rises (B5); more activation memory.",
					Evidence: []Evidence{
						fev("B4", "LLMPrefillBoundTTFT", "2"),
						ev("max_num_batched_tokens", "2048", "probe"),
						evq(sigRunning, "", "10"),
						evq(sigPromptMean, "", "3000"),
						evq(sigTTFT, p95, "2"),
						evq(sigITL, p95, "0.03"),
					},
					Rationale: "A step holds one token per running request and the rest for prefill: the mean prompt 3000 + R 10 = 3010 tokens; " +
						"rounded up to a power of two, 4096, so the mean prompt prefills in one step instead of ⌈3000 / (2048 − 10)⌉ = 2.",
					Notes: []string{"supersedes lower_max_num_batched_tokens (B8) proposing 2048 → 1024: B4 comes first in the triage order"},
					Time:  testNow,
				}},
				Skipped: []Skip{
					{ID: "enable_prefix_caching", Instance: "gpu-2:8000", Engine: "vllm", Model: llama, Reason: "enable_prefix_caching is not reported and the engine default is on; report it (instances[].settings) if it was turned off"},
					{ID: "long_prefill_threshold", Instance: "gpu-2:8000", Engine: "vllm", Model: llama, Reason: "needs max_model_len of gpu-2:8000 (vLLM /v1/models or instances[].settings)"},
					{ID: "lower_max_num_batched_tokens", Instance: "gpu-2:8000", Engine: "vllm", Model: llama, Reason: "conflicts with raise_max_num_batched_tokens (B4) on the same knob; B4 comes first in the triage order"},
				},
			},
		},
		{
			name: "B1 with no model shape: memory strategies skip, the batch is capped at C_kv",
			cfg:  DefaultConfig(),
			in: Input{
				Instances: []*collector.Instance{vllmB1()},
				Findings:  []Finding{finding("B1", "LLMKVCachePressure", vllmB1(), 2, "raise_gpu_memory_utilization", "fp8_kv_cache", "lower_max_num_seqs")},
			},
			// C_kv = ⌊0.9 × 327680 / 1200⌋ = 245; max_num_seqs unknown → factor 0.7.
			// Confidence: current 0.7 × method 1 × inputs 1 = 0.7.
			want: Report{
				Recommendations: []Recommendation{{
					ID: "lower_max_num_seqs", Rank: 1, Instance: "gpu-0:8000", Engine: "vllm", Model: llama,
					Bottlenecks: []string{"B1"},
					Action:      Action{Kind: KindFlag, Flag: "--max-num-seqs", Setting: "max_num_seqs", Current: "unknown", Proposed: "245", Unit: "requests"},
					Effects:     []Effect{{Signal: sigPreemptions, Direction: Decrease, Current: ptr(2), Estimate: ptr(0)}},
					Confidence:  0.7,
					Factors: []Factor{
						{Name: "current", Value: 0.7, Reason: "current value unknown"},
						{Name: "method", Value: 1, Reason: "KV concurrency and the ITL fit (tuning.md §6)"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk: "Lower throughput per GPU; requests queue instead (see B2).",
					Evidence: []Evidence{
						fev("B1", "LLMKVCachePressure", "2"),
						ev("gpu_memory_utilization", "0.9", "metrics"),
						evq(sigKVCapacity, "", "327680"),
						evq(sigPromptMean, "", "1000"),
						evq(sigGenMean, "", "400"),
						evq(sigRunning, "", "200"),
						evq(sigWaiting, "", "20"),
						evq(sigPreemptions, "", "2"),
					},
					Rationale: "Proposed = min(C_kv = ⌊0.9 × N_kv 327680 / r̄ 1200⌋ = 245, r̄ = prompt 1000 + output 400/2 = 1200 tokens).",
					Notes: []string{
						"B1: whether memory can grow is unknown (needs gpu_memory_utilization and the GPU memory of the model)",
						"max_num_seqs is not reported: set it under instances[].settings to compare",
					},
					Time: testNow,
				}},
				Skipped: []Skip{
					{ID: "fp8_kv_cache", Instance: "gpu-0:8000", Engine: "vllm", Model: llama, Reason: `the element size of cache dtype "auto" is unknown (for auto, describe model "meta-llama/Llama-3.1-8B-Instruct" in recommender.models)`},
					{ID: "raise_gpu_memory_utilization", Instance: "gpu-0:8000", Engine: "vllm", Model: llama, Reason: `needs gpu_memory_utilization and the GPU memory of model "meta-llama/Llama-3.1-8B-Instruct" (recommender.models)`},
				},
			},
		},
		{
			name: "SGLang B1: more static memory, FP8 KV, more conservative admission",
			cfg:  llamaConfig(),
			in: Input{
				Instances: []*collector.Instance{sglang},
				Findings:  []Finding{finding("B1", "LLMKVCachePressure", sglang, 0.5, "raise_mem_fraction_static", "fp8_kv_cache", "lower_max_num_seqs", "raise_schedule_conservativeness")},
			},
			// f' = min(0.95, 0.85 + (0.15 × 80 − 6)/80) = 0.925 → 0.92 (rounded down to 0.01); Δ = 0.07.
			// extra = ⌊0.07 × 85899345920 / 131072⌋ = ⌊45875.2⌋ = 45875; N' = 445875;
			// usage 0.97 × 400000 / 445875 = 0.870199; demand (250 + 40) × 1200 = 348000 ≤ 0.9 × 445875.
			// FP8: N' = 400000 × 2 = 800000, usage 0.485; dtype from the default (0.7).
			// Conservativeness 1.0 (default, 0.7) × 1.3 = 1.3, method 0.5: 0.35.
			want: Report{
				Recommendations: []Recommendation{
					{
						ID: "raise_mem_fraction_static", Rank: 1, Instance: "sg-0:30000", Engine: "sglang", Model: llama,
						Bottlenecks: []string{"B1"},
						Action:      Action{Kind: KindFlag, Flag: "--mem-fraction-static", Setting: "mem_fraction_static", Current: "0.85", Proposed: "0.92", Unit: "ratio"},
						Effects: []Effect{
							{Signal: sigKVCapacity, Direction: Increase, Current: ptr(400000), Estimate: ptr(445875)},
							{Signal: sigKVUsage, Direction: Decrease, Current: ptr(0.97), Estimate: ptr(0.870199)},
							{Signal: sigPreemptions, Direction: Decrease, Current: ptr(0.5), Estimate: ptr(0)},
						},
						Confidence: 0.9,
						Factors: []Factor{
							{Name: "method", Value: 1, Reason: "KV capacity formula (tuning.md §6)"},
							{Name: "inputs", Value: 0.9, Reason: "lowest-weighted input: model_shape from model"},
						},
						Risk: "OOM in prefill or decode activation peaks; breaks other processes sharing the GPU.",
						Evidence: []Evidence{
							fev("B1", "LLMKVCachePressure", "0.5"),
							ev("mem_fraction_static", "0.85", "probe"),
							ev("model_shape", "layers=32 kv_heads=8 head_dim=128 dtype_bytes=2", "model"),
							ev("gpu_memory_bytes", "85899345920", "model"),
							evq(sigKVCapacity, "", "400000"),
							evq(sigKVUsage, "", "0.97"),
							evq(sigPreemptions, "", "0.5"),
							evq(sigRunning, "", "250"),
							evq(sigWaiting, "", "40"),
							evq(sigPromptMean, "", "1000"),
							evq(sigGenMean, "", "400"),
						},
						Rationale: "mem_fraction_static' = min(0.95, 0.85 + ((1 − 0.85) × 80 GiB − 6 GiB reserved) / 80 GiB) = 0.92. The added 5.6 GiB all go to the KV cache. " +
							"kv_bytes/token = 2 × 32 layers × 8 KV heads × 128 head_dim × 2 B / TP 1 = 131072 B; extra tokens = ⌊0.07 × 85899345920 B / 131072 B⌋ = 45875. " +
							"N_kv 400000 → 445875 tokens. KV usage 0.97 × 400000 / 445875 = 0.870199. " +
							"Present demand (R 250 + W 40) × r̄ 1200 = 348000 tokens fits 0.9 × 445875, so preemptions should stop.",
						Time: testNow,
					},
					{
						ID: "fp8_kv_cache", Rank: 2, Instance: "sg-0:30000", Engine: "sglang", Model: llama,
						Bottlenecks: []string{"B1"},
						Action:      Action{Kind: KindFlag, Flag: "--kv-cache-dtype", Setting: "kv_cache_dtype", Current: "auto", Proposed: "fp8_e4m3"},
						Effects: []Effect{
							{Signal: sigKVCapacity, Direction: Increase, Current: ptr(400000), Estimate: ptr(800000)},
							{Signal: sigKVUsage, Direction: Decrease, Current: ptr(0.97), Estimate: ptr(0.485)},
							{Signal: sigPreemptions, Direction: Decrease, Current: ptr(0.5), Estimate: ptr(0)},
						},
						Confidence: 0.7,
						Factors: []Factor{
							{Name: "method", Value: 1, Reason: "KV capacity scales with bytes per element (tuning.md §6)"},
							{Name: "inputs", Value: 0.7, Reason: "lowest-weighted input: kv_cache_dtype from default"},
						},
						Risk: "Accuracy loss without calibrated scales; no latency gain without FP8 attention kernels.",
						Evidence: []Evidence{
							fev("B1", "LLMKVCachePressure", "0.5"),
							ev("kv_cache_dtype", "auto", "default"),
							ev("model_shape", "layers=32 kv_heads=8 head_dim=128 dtype_bytes=2", "model"),
							evq(sigKVCapacity, "", "400000"),
							evq(sigKVUsage, "", "0.97"),
							evq(sigPreemptions, "", "0.5"),
							evq(sigRunning, "", "250"),
							evq(sigWaiting, "", "40"),
							evq(sigPromptMean, "", "1000"),
							evq(sigGenMean, "", "400"),
						},
						Rationale: "Cache dtype auto stores 2 bytes per element, FP8 stores 1: N_kv × 2. N_kv 400000 → 800000 tokens. KV usage 0.97 × 400000 / 800000 = 0.485. " +
							"Present demand (R 250 + W 40) × r̄ 1200 = 348000 tokens fits 0.9 × 800000, so preemptions should stop.",
						Notes: []string{"kv_cache_dtype not reported by sg-0:30000; the engine default auto is assumed"},
						Time:  testNow,
					},
					{
						ID: "raise_schedule_conservativeness", Rank: 3, Instance: "sg-0:30000", Engine: "sglang", Model: llama,
						Bottlenecks: []string{"B1"},
						Action:      Action{Kind: KindFlag, Flag: "--schedule-conservativeness", Setting: "schedule_conservativeness", Current: "1", Proposed: "1.3"},
						Effects:     []Effect{{Signal: sigPreemptions, Direction: Decrease, Current: ptr(0.5), Estimate: ptr(0.016667)}},
						Confidence:  0.35,
						Factors: []Factor{
							{Name: "method", Value: 0.5, Reason: "step rule from the SGLang tuning guide (1.0 → 1.3), no model"},
							{Name: "inputs", Value: 0.7, Reason: "lowest-weighted input: schedule_conservativeness from default"},
						},
						Risk: "Fewer requests admitted; more queueing.",
						Evidence: []Evidence{
							fev("B1", "LLMKVCachePressure", "0.5"),
							ev("schedule_conservativeness", "1.0", "default"),
							evq(sigPreemptions, "", "0.5"),
						},
						Rationale: "1 × 1.3 = 1.3, the SGLang guide's step for frequent retractions; about one retraction a minute (1/60 s) is acceptable there.",
						Notes:     []string{"schedule_conservativeness not reported by sg-0:30000; the engine default 1.0 is assumed"},
						Time:      testNow,
					},
				},
				Skipped: []Skip{{
					ID: "lower_max_num_seqs", Instance: "sg-0:30000", Engine: "sglang", Model: llama,
					Reason: "no bound could be computed: B1: memory can still grow (mem_fraction_static' = min(0.95, 0.85 + ((1 − 0.85) × 80 GiB − 6 GiB reserved) / 80 GiB) = 0.92): raise it before capping the batch",
				}},
			},
		},
	})
}

type analyzeCase struct {
	name string
	cfg  Config
	in   Input
	want Report
}

func runAnalyze(t *testing.T, cases []analyzeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRecommender(t, tc.cfg)
			got := r.Analyze(testNow, tc.in)
			assertRecs(t, got.Recommendations, tc.want.Recommendations)
			if !reflect.DeepEqual(got.Skipped, tc.want.Skipped) {
				t.Errorf("skipped:\n%+v\nwant:\n%+v", got.Skipped, tc.want.Skipped)
			}
			// Pure and deterministic: the same input, findings reversed, gives the same report.
			rev := tc.in
			rev.Findings = slices.Clone(tc.in.Findings)
			slices.Reverse(rev.Findings)
			if again := r.Analyze(testNow, rev); !reflect.DeepEqual(again, got) {
				t.Error("the report depends on the order of the findings")
			}
		})
	}
}
