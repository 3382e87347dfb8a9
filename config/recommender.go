package config

import (
	"fmt"
	"slices"

	"github.com/optiinfra/perfagent/signals"
)

// RecommenderConfig is the recommender section.
type RecommenderConfig struct {
	// Objectives are the default latency targets.
	Objectives Objectives `yaml:"objectives" json:"objectives"`
	// Models give the shape of served models and the GPU they run on.
	Models []ModelConfig `yaml:"models,omitempty" json:"models,omitempty"`
	// Memory bounds memory recommendations.
	Memory MemoryConfig `yaml:"memory" json:"memory"`
}

// ModelConfig describes one served model, matched by its model label.
type ModelConfig struct {
	Name               string  `yaml:"name" json:"name"`
	Parameters         float64 `yaml:"parameters,omitempty" json:"parameters,omitempty"`
	Layers             int     `yaml:"layers" json:"layers"`
	KVHeads            int     `yaml:"kv_heads" json:"kv_heads"`
	HeadDim            int     `yaml:"head_dim" json:"head_dim"`
	DTypeBytes         float64 `yaml:"dtype_bytes" json:"dtype_bytes"`
	TensorParallelSize int     `yaml:"tensor_parallel_size,omitempty" json:"tensor_parallel_size,omitempty"`
	// GPUMemoryBytes is the memory of one device the model runs on.
	GPUMemoryBytes float64 `yaml:"gpu_memory_bytes,omitempty" json:"gpu_memory_bytes,omitempty"`
	// GPU is the accelerator type the model runs on, named as in
	// cost.gpu_hour_prices (a100-40gb, h100-80gb); GPUHasFP8 tells from it
	// whether FP8 weights compute faster. Empty: not known.
	GPU string `yaml:"gpu,omitempty" json:"gpu,omitempty"`
}

// MemoryConfig bounds GPU memory recommendations (docs/bottlenecks.md B1, B12).
type MemoryConfig struct {
	// MaxFraction caps --gpu-memory-utilization and --mem-fraction-static.
	MaxFraction float64 `yaml:"max_fraction" json:"max_fraction"`
	// ReservedBytes is, by engine, the GPU memory to leave outside the
	// engine's fraction for activations, CUDA graphs and the CUDA context.
	ReservedBytes map[string]float64 `yaml:"reserved_bytes" json:"reserved_bytes"`
}

const gib = 1 << 30

// DefaultRecommenderConfig returns what an absent recommender section
// means: NVIDIA Dynamo's SLA-planner targets (TTFT 500 ms, ITL 50 ms),
// memory fraction at most 0.95, and 4 GiB (vLLM) / 6 GiB (SGLang, the
// middle of its documented 5–8 GB) left free (docs/bottlenecks.md B12).
func DefaultRecommenderConfig() RecommenderConfig {
	return RecommenderConfig{
		Objectives: Objectives{TTFTP95Seconds: 0.5, ITLP95Seconds: 0.05},
		Memory: MemoryConfig{
			MaxFraction:   0.95,
			ReservedBytes: map[string]float64{signals.EngineVLLM: 4 * gib, signals.EngineSGLang: 6 * gib},
		},
	}
}

// UnmarshalYAML applies the defaults before decoding.
func (c *RecommenderConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultRecommenderConfig()
	type plain RecommenderConfig
	return unmarshal((*plain)(c))
}

// Validate checks every value and returns one *FieldError per bad field,
// with paths under "recommender".
func (c *RecommenderConfig) Validate() []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: "recommender." + path, Err: fmt.Errorf(format, args...)})
	}
	if c.Objectives.TTFTP95Seconds <= 0 {
		bad("objectives.ttft_p95_seconds", "must be greater than zero")
	}
	if c.Objectives.ITLP95Seconds <= 0 {
		bad("objectives.itl_p95_seconds", "must be greater than zero")
	}
	if c.Objectives.QueueWaitP95Seconds < 0 {
		bad("objectives.queue_wait_p95_seconds", "must not be negative")
	}
	if err := CheckPrefer(c.Objectives.Prefer); err != nil {
		bad("objectives.prefer", "%v", err)
	}
	if c.Memory.MaxFraction <= 0 || c.Memory.MaxFraction > 1 {
		bad("memory.max_fraction", "must be in (0, 1], got %g", c.Memory.MaxFraction)
	}
	for e, b := range c.Memory.ReservedBytes {
		if !slices.Contains(knownEngines, e) {
			bad("memory.reserved_bytes."+e, "unknown engine %q", e)
		}
		if b < 0 {
			bad("memory.reserved_bytes."+e, "must not be negative")
		}
	}
	seen := map[string]int{}
	for i, m := range c.Models {
		p := fmt.Sprintf("models[%d].", i)
		if m.Name == "" {
			bad(p+"name", "is empty")
		} else if j, ok := seen[m.Name]; ok {
			bad(p+"name", "%q already described by models[%d]", m.Name, j)
		}
		seen[m.Name] = i
		for _, f := range []struct {
			name string
			v    float64
		}{{"layers", float64(m.Layers)}, {"kv_heads", float64(m.KVHeads)}, {"head_dim", float64(m.HeadDim)}, {"dtype_bytes", m.DTypeBytes}} {
			if f.v <= 0 {
				bad(p+f.name, "must be greater than zero")
			}
		}
		if m.Parameters < 0 {
			bad(p+"parameters", "must not be negative")
		}
		if m.TensorParallelSize < 0 {
			bad(p+"tensor_parallel_size", "must not be negative")
		}
		if m.GPUMemoryBytes < 0 {
			bad(p+"gpu_memory_bytes", "must not be negative")
		}
	}
	return errs
}

// knownEngines are the engines memory reservations may be given for.
var knownEngines = []string{signals.EngineSGLang, signals.EngineTGI, signals.EngineVLLM}

// Objectives are the latency targets recommendations are sized for. In a
// request, a zero field takes the configured default.
type Objectives struct {
	TTFTP95Seconds float64 `yaml:"ttft_p95_seconds" json:"ttft_p95_seconds"`
	ITLP95Seconds  float64 `yaml:"itl_p95_seconds" json:"itl_p95_seconds"`
	// QueueWaitP95Seconds is the target p95 queue wait for replica
	// sizing; zero derives it from the TTFT target (docs/recommendations.md).
	QueueWaitP95Seconds float64 `yaml:"queue_wait_p95_seconds,omitempty" json:"queue_wait_p95_seconds,omitempty"`
	// Prefer orders recommendations: PreferLatency (empty means it) keeps
	// the bottlenecks' triage order, PreferCost puts the largest saving
	// per hour first (docs/cost.md).
	Prefer string `yaml:"prefer,omitempty" json:"prefer,omitempty"`
}

// What the ranking of recommendations may prefer.
const (
	PreferLatency = "latency"
	PreferCost    = "cost"
)

// CheckPrefer accepts an empty preference, PreferLatency and PreferCost.
func CheckPrefer(v string) error {
	if v != "" && v != PreferLatency && v != PreferCost {
		return fmt.Errorf("%q is neither %s nor %s", v, PreferLatency, PreferCost)
	}
	return nil
}
