package recommender

import (
	"testing"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

func TestAnalyzeTensorParallel(t *testing.T) {
	b4 := func(name string, prefill float64) *collector.Instance {
		return &collector.Instance{
			Instance: name, Engine: signals.EngineVLLM, Model: "m",
			Settings: settings(collector.SettingFromMetrics, "max_num_batched_tokens", "16384"),
			Signals: []signals.Value{
				sig(sigTTFT, p95, prefill+0.1), sig(sigQueue, p95, 0.05), sig("llm_prefill_time_seconds", p95, prefill),
				sig(sigKVCapacity, "", 100000), sig(sigRunning, "", 2), sig(sigPromptMean, "", 12000),
			},
		}
	}
	slow, slower, fits := b4("p:8000", 1.2), b4("q:8000", 6), b4("r:8000", 0.3)
	shaped := config.DefaultRecommenderConfig()
	shaped.Models = []config.ModelConfig{{Name: "m", Parameters: 8e9, Layers: 32, KVHeads: 8, HeadDim: 128, DTypeBytes: 2, GPUMemoryBytes: 48 << 30}}
	runAnalyze(t, []analyzeCase{
		{
			name: "B4 compute-bound prefill: the smallest degree that meets the TTFT target",
			cfg:  shaped,
			in: Input{
				Instances: []*collector.Instance{slow},
				Findings:  []Finding{finding("B4", "LLMPrefillBoundTTFT", slow, 1.3, "raise_tensor_parallel", "raise_max_num_batched_tokens")},
			},
			// TTFT p95 1.3 s. t = 2: 1.3 / 1.8 = 0.7222 > 0.5;
			// t = 4: 1.3 / 3.6 = 0.3611 ≤ 0.5. kv_bytes 2 × 32 × 8 × 128 × 2 = 131072 B,
			// W = 16e9 B: N_kv 100000 × 4 + 16e9 × 3 / 131072 = 766210 tokens.
			// Without a model shape (next case): at least N_kv × 8.
			// The budget 16384 already holds the mean prompt: no budget change.
			golden:  "b4_tensor_parallel",
			actions: []string{"raise_tensor_parallel 1 → 4"},
		},
		{
			name: "B4 when even one node misses the target: 8 GPUs, with a note",
			cfg:  config.DefaultRecommenderConfig(),
			in: Input{
				Instances: []*collector.Instance{slower},
				Findings:  []Finding{finding("B4", "LLMPrefillBoundTTFT", slower, 6.1, "raise_tensor_parallel")},
			},
			// t = 8: 6.1 / 7.2 = 0.8472 > 0.5.
			golden:  "b4_tensor_parallel_misses",
			actions: []string{"raise_tensor_parallel 1 → 8"},
		},
		{
			name: "B4 whose prefill fits the target: no more GPUs",
			cfg:  config.DefaultRecommenderConfig(),
			in: Input{
				Instances: []*collector.Instance{fits},
				Findings:  []Finding{finding("B4", "LLMPrefillBoundTTFT", fits, 0.4, "raise_tensor_parallel")},
			},
			golden: "b4_tensor_parallel_fits",
		},
	})
}
