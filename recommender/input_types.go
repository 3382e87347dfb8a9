package recommender

import (
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
)

// Finding is one detected bottleneck on one instance, the input the
// recommender needs from the rules package.
type Finding struct {
	// Bottleneck is the id of docs/bottlenecks.md, e.g. "B1".
	Bottleneck string `json:"bottleneck"`
	// Rule is the name of the rule that fired.
	Rule     string `json:"rule"`
	Instance string `json:"instance"`
	Engine   string `json:"engine"`
	Model    string `json:"model"`
	// Recommend lists recommendation ids in the rule's order of preference.
	Recommend []string `json:"recommend"`
	// Since is when the bottleneck became active.
	Since time.Time `json:"since"`
	// Value is the value of the rule's expression.
	Value float64 `json:"value"`
}

// Point is one sample of an instance's batch size and inter-token latency,
// the data of the ITL = α + β·batch fit.
type Point struct {
	Time time.Time `json:"time"`
	// Running is llm_requests_running (a window average is best).
	Running float64 `json:"running"`
	// ITL is llm_inter_token_latency_seconds at Input.HistoryQuantile.
	ITL float64 `json:"itl"`
}

// ModelShape is what the KV-cache formulas need to know about a model.
type ModelShape struct {
	// Parameters is the number of weights.
	Parameters float64 `json:"parameters"`
	Layers     int     `json:"layers"`
	KVHeads    int     `json:"kv_heads"`
	HeadDim    int     `json:"head_dim"`
	// DTypeBytes is the size of one KV element when the engine's cache
	// dtype is "auto" (the model dtype): 2 for bf16/fp16.
	DTypeBytes float64 `json:"dtype_bytes"`
}

// KVBytesPerToken is 2 (K and V) × layers × KV heads × head dim × bytes
// per element (docs/recommendations.md, Formulas), for the whole model on one device.
func (s ModelShape) KVBytesPerToken(dtypeBytes float64) float64 {
	return 2 * float64(s.Layers) * float64(s.KVHeads) * float64(s.HeadDim) * dtypeBytes
}

// Valid reports whether every field the KV formula needs is set.
func (s ModelShape) Valid() bool {
	return s.Layers > 0 && s.KVHeads > 0 && s.HeadDim > 0 && s.DTypeBytes > 0
}

// GPU is the accelerator one instance runs on (per device).
type GPU struct {
	MemoryBytes float64 `json:"memory_bytes"`
	// Type is the accelerator type (h100-80gb, a100-40gb), when known.
	Type string `json:"type,omitempty"`
	// FP8 tells whether the GPU has FP8 tensor cores; nil when not known.
	FP8 *bool `json:"fp8,omitempty"`
}

// Model is what is known about a served model where the engine does not
// say it.
type Model struct {
	Shape ModelShape `json:"shape"`
	GPU   GPU        `json:"gpu"`
	// TensorParallelSize is how many devices share one instance; the KV
	// bytes per token per device is divided by it. Zero means 1.
	TensorParallelSize int `json:"tensor_parallel_size"`
}

// Input is everything one recommendation pass reads.
type Input struct {
	Findings []Finding `json:"findings"`
	// Instances are the current snapshot's instances: engine, model,
	// settings and signals. Replica counts are the number of instances
	// of one engine and model.
	Instances []*collector.Instance `json:"instances"`
	// History holds, by instance, points for the ITL fit, oldest first.
	History map[string][]Point `json:"history,omitempty"`
	// HistoryQuantile is the quantile of the ITL values in History;
	// empty means "0.95".
	HistoryQuantile string `json:"history_quantile,omitempty"`
	// Objectives override the configured objectives field by field.
	Objectives config.Objectives `json:"objectives"`
	// Models by model name override the configured model shapes.
	Models map[string]Model `json:"models,omitempty"`
}
