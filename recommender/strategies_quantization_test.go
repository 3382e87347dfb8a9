package recommender

import (
	"testing"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

func TestAnalyzeFP8Weights(t *testing.T) {
	cfg := config.DefaultRecommenderConfig()
	cfg.Models = []config.ModelConfig{{Name: "m", Parameters: 8e9, Layers: 32, KVHeads: 8, HeadDim: 128, DTypeBytes: 2, GPUMemoryBytes: 48 << 30}}
	inst := func(name, quant string) *collector.Instance {
		in := &collector.Instance{
			Instance: name, Engine: signals.EngineSGLang, Model: "m",
			Signals: []signals.Value{sig(sigKVCapacity, "", 100000), sig(sigKVUsage, "", 0.95), sig(sigTTFT, p95, 1.2)},
		}
		if quant != "" {
			in.Settings = settings(collector.SettingFromProbe, "quantization", quant)
		}
		return in
	}
	bf16, fp8 := inst("a:30000", ""), inst("b:30000", "fp8")
	onGPU := func(gpu string) config.RecommenderConfig {
		c := config.DefaultRecommenderConfig()
		c.Models = []config.ModelConfig{cfg.Models[0]}
		c.Models[0].GPU = gpu
		return c
	}
	runAnalyze(t, []analyzeCase{
		{
			name: "B1 and B4: the freed weight bytes become KV tokens, prefill runs 1.6× faster",
			cfg:  cfg,
			in: Input{
				Instances: []*collector.Instance{bf16},
				Findings: []Finding{
					finding("B1", "LLMKVCachePressure", bf16, 0.95, "fp8_weights"),
					finding("B4", "LLMPrefillBoundTTFT", bf16, 1.2, "fp8_weights"),
				},
			},
			// Freed 8e9 × (2 − 1) B; kv_bytes/token = 2 × 32 × 8 × 128 × 2 = 131072 B;
			// extra ⌊8e9 / 131072⌋ = 61035 tokens. TTFT 1.2 / 1.6 = 0.75 s.
			golden:  "fp8_weights",
			actions: []string{"fp8_weights none → fp8"},
		},
		{
			name: "already quantized: nothing to do",
			cfg:  cfg,
			in: Input{
				Instances: []*collector.Instance{fp8},
				Findings:  []Finding{finding("B1", "LLMKVCachePressure", fp8, 0.95, "fp8_weights")},
			},
			golden: "fp8_weights_quantized",
		},
		{
			name: "B4 on an H100: FP8 tensor cores known, prefill 1.6× faster with method 0.8",
			cfg:  onGPU("h100-80gb"),
			in: Input{
				Instances: []*collector.Instance{bf16},
				Findings:  []Finding{finding("B4", "LLMPrefillBoundTTFT", bf16, 1.2, "fp8_weights")},
			},
			// TTFT 1.2 / 1.6 = 0.75 s; confidence method 0.8 × inputs 0.7 (quantization from the catalog default) = 0.56.
			golden:  "fp8_weights_fp8_gpu",
			actions: []string{"fp8_weights none → fp8"},
		},
		{
			name: "B4 on an A100: no FP8 tensor cores, so no prefill speed-up to recommend",
			cfg:  onGPU("a100-40gb"),
			in: Input{
				Instances: []*collector.Instance{bf16},
				Findings:  []Finding{finding("B4", "LLMPrefillBoundTTFT", bf16, 1.2, "fp8_weights")},
			},
			golden: "fp8_weights_no_fp8_gpu",
		},
	})
}

func TestAnalyzeINT4AWQWeights(t *testing.T) {
	cfg := config.DefaultRecommenderConfig()
	cfg.Models = []config.ModelConfig{{Name: "m", Parameters: 8e9, Layers: 32, KVHeads: 8, HeadDim: 128, DTypeBytes: 2, GPUMemoryBytes: 48 << 30, GPU: "h100-80gb"}}
	inst := func(name, quant string) *collector.Instance {
		in := &collector.Instance{
			Instance: name, Engine: signals.EngineVLLM, Model: "m",
			Signals: []signals.Value{sig(sigKVCapacity, "", 100000), sig(sigKVUsage, "", 0.95), sig(sigITL, p95, 0.08)},
		}
		if quant != "" {
			in.Settings = settings(collector.SettingFromProbe, "quantization", quant)
		}
		return in
	}
	bf16, fp8 := inst("a:8000", ""), inst("b:8000", "fp8")
	both := []string{"fp8_weights", "int4_awq_weights"}
	runAnalyze(t, []analyzeCase{
		{
			name: "B1: a manual action ranked after fp8_weights, freeing about 1.48 B per parameter",
			cfg:  cfg,
			in: Input{
				Instances: []*collector.Instance{bf16},
				Findings:  []Finding{finding("B1", "LLMKVCachePressure", bf16, 0.95, both...)},
			},
			// Freed 8e9 × (2 − 0.5 − 2.5/128) B = 11843750000 B; kv_bytes/token 131072 B;
			// extra ⌊11843750000 / 131072⌋ = 90360 tokens (fp8_weights: 61035).
			golden:  "int4_awq_weights",
			actions: []string{"fp8_weights none → fp8", "int4_awq_weights"},
		},
		{
			name: "B5: decode reads fewer weight bytes, no estimate",
			cfg:  cfg,
			in: Input{
				Instances: []*collector.Instance{bf16},
				Findings:  []Finding{finding("B5", "LLMDecodeBoundITL", bf16, 0.08, "int4_awq_weights")},
			},
			golden:  "int4_awq_weights_b5",
			actions: []string{"int4_awq_weights"},
		},
		{
			name: "already quantized: no AWQ on top of FP8",
			cfg:  cfg,
			in: Input{
				Instances: []*collector.Instance{fp8},
				Findings:  []Finding{finding("B1", "LLMKVCachePressure", fp8, 0.95, "int4_awq_weights")},
			},
			golden: "int4_awq_weights_quantized",
		},
	})
}
