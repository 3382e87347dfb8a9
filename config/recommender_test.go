package config

import (
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/signals"
)

func TestRecommenderSectionYAML(t *testing.T) {
	const in = `
objectives:
  itl_p95_seconds: 0.03
memory:
  reserved_bytes: {vllm: 2147483648}
models:
  - name: meta-llama/Llama-3.1-8B-Instruct
    layers: 32
    kv_heads: 8
    head_dim: 128
    dtype_bytes: 2
    gpu_memory_bytes: 85899345920
`
	var got RecommenderConfig
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	// Unset fields keep the defaults: TTFT 0.5 s, max fraction 0.95, SGLang 6 GiB.
	want := RecommenderConfig{
		Objectives: Objectives{TTFTP95Seconds: 0.5, ITLP95Seconds: 0.03},
		Memory:     MemoryConfig{MaxFraction: 0.95, ReservedBytes: map[string]float64{signals.EngineVLLM: 2 * gib, signals.EngineSGLang: 6 * gib}},
		Models:     []ModelConfig{{Name: "meta-llama/Llama-3.1-8B-Instruct", Layers: 32, KVHeads: 8, HeadDim: 128, DTypeBytes: 2, GPUMemoryBytes: 80 * gib}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	var bad RecommenderConfig
	dec = yaml.NewDecoder(strings.NewReader("objectives: {ttft_seconds: 1}\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&bad); err == nil || !strings.Contains(err.Error(), "line 1: field ttft_seconds not found") {
		t.Errorf("unknown field: %v", err)
	}
}
