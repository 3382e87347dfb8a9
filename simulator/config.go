package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Engine names an inference server implementation.
type Engine string

// Supported engines.
const (
	EngineVLLM   Engine = "vllm"
	EngineSGLang Engine = "sglang"
	EngineTGI    Engine = "tgi"
)

// Duration is a time.Duration written as "90s", "5m" or "1h" in YAML and JSON.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if err := d.parse(n.Value); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	return nil
}

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5m\": %w", err)
	}
	return d.parse(s)
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) {
	return time.Duration(d).String(), nil
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// FleetConfig is a fleet file: the servers to simulate and, for scenarios, the ground truth.
type FleetConfig struct {
	// Description says what the fleet or scenario shows.
	Description string `yaml:"description,omitempty"`
	// Seed makes the simulation deterministic.
	Seed int64 `yaml:"seed"`
	// Duration is how long a scenario runs (replay default, scenario tests).
	Duration Duration `yaml:"duration,omitempty"`
	// Servers are the simulated inference servers.
	Servers []ServerConfig `yaml:"servers"`
	// Truth lists which bottleneck is present on which server and when.
	Truth []Truth `yaml:"truth,omitempty"`
}

// Truth is one ground-truth interval of a scenario.
type Truth struct {
	// Bottleneck is an id B1..B13 from docs/bottlenecks.md.
	Bottleneck string `yaml:"bottleneck"`
	// Server is the name of the affected server.
	Server string `yaml:"server"`
	// From and To bound the interval, relative to the start of the run.
	From Duration `yaml:"from"`
	To   Duration `yaml:"to"`
	// FromEvent, instead of From, starts the interval at a physical event of
	// the server (EventFirstPreemption, EventFirstRetraction,
	// EventSustainedRetraction, EventCapBound) in each replay,
	// so the truth stays right at every seed. When the event never happens
	// before To, the bottleneck was not present in that replay.
	FromEvent string `yaml:"from_event,omitempty"`
	// Lever, when set, names the recommendation the closed loop applies
	// for this bottleneck instead of the top-ranked one. The recommender
	// ranks a manual action after every flag or replica change, so a
	// manual action is judged only when a scenario names it.
	Lever *Lever `yaml:"lever,omitempty"`
}

// Lever is the recommendation a scenario has the closed loop apply.
type Lever struct {
	// ID is its catalog id (int4_awq_weights).
	ID string `yaml:"id" json:"id"`
	// Flag and Value are how an operator carries out a manual action on
	// the server once its work is done, as an engine flag and its value
	// (serving the AWQ checkpoint: --quantization awq_marlin). A flag
	// action brings its own, and leaves them empty.
	Flag  string `yaml:"flag,omitempty" json:"flag,omitempty"`
	Value string `yaml:"value,omitempty" json:"value,omitempty"`
}

// ServerConfig describes one simulated server.
type ServerConfig struct {
	// Name identifies the server in truth entries and logs; defaults to "<engine>-<index>".
	Name string `yaml:"name"`
	// Engine is vllm, sglang or tgi.
	Engine Engine `yaml:"engine"`
	// Listen is the host:port the live server listens on and the instance label in replays.
	Listen string `yaml:"listen"`
	// MetricsVersion selects the vLLM metric generation: "v1" (default) or "v0".
	MetricsVersion string `yaml:"metrics_version,omitempty"`
	// Model is the served model's name and shape.
	Model ModelConfig `yaml:"model"`
	// GPU is the accelerator the model runs on.
	GPU GPUConfig `yaml:"gpu"`
	// Settings are the engine flags, by their real names.
	Settings Settings `yaml:"settings"`
	// Workload is the offered load.
	Workload Workload `yaml:"workload"`
	// Events change the workload or the settings at given times.
	Events []Event `yaml:"events,omitempty"`
}

// ModelConfig is the served model.
type ModelConfig struct {
	// Name is the served model name (vLLM model_name label, TGI model_id).
	Name string `yaml:"name" json:"name"`
	// ParametersB is the parameter count in billions.
	ParametersB float64 `yaml:"parameters_b" json:"parameters_b"`
	// Layers, KVHeads and HeadDim give the KV-cache shape.
	Layers  int `yaml:"layers" json:"layers"`
	KVHeads int `yaml:"kv_heads" json:"kv_heads"`
	HeadDim int `yaml:"head_dim" json:"head_dim"`
	// DtypeBytes is the bytes per weight and per KV element (2 for bf16).
	DtypeBytes float64 `yaml:"dtype_bytes" json:"dtype_bytes"`
	// ContextLength is the model's maximum context (max_position_embeddings).
	ContextLength int `yaml:"context_length" json:"context_length"`
}

// GPUConfig is the accelerator.
type GPUConfig struct {
	// Name is the accelerator type, named as in cost.gpu_hour_prices and
	// recommender.models[].gpu ("h100-80gb"); optional, it only tells the
	// closed loop's recommender which GPU the model runs on.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// MemoryGiB is the device memory.
	MemoryGiB float64 `yaml:"memory_gib" json:"memory_gib"`
	// BandwidthGBps is the peak memory bandwidth in GB/s.
	BandwidthGBps float64 `yaml:"bandwidth_gbps" json:"bandwidth_gbps"`
	// TFLOPS is the peak dense 16-bit throughput in TFLOP/s.
	TFLOPS float64 `yaml:"tflops" json:"tflops"`
	// MBU and MFU are the achieved fractions of bandwidth and compute.
	MBU float64 `yaml:"mbu" json:"mbu"`
	MFU float64 `yaml:"mfu" json:"mfu"`
	// ReservedGiB is memory taken by activations, CUDA graphs and the runtime.
	ReservedGiB float64 `yaml:"reserved_gib" json:"reserved_gib"`
	// StepOverheadMs is the fixed host time per engine step.
	StepOverheadMs float64 `yaml:"step_overhead_ms" json:"step_overhead_ms"`
	// FrontendMs is the host CPU time one request costs the API server
	// outside the engine (HTTP, tokenization, detokenization); 0: none.
	// vLLM shares it among --api-server-count processes.
	FrontendMs float64 `yaml:"frontend_ms,omitempty" json:"frontend_ms,omitempty"`
	// FP8 is true for a GPU with FP8 tensor cores (compute capability
	// 8.9 or more: L4, L40S, H100, H200; MI300): FP8 weights then compute
	// faster, not only take less memory.
	FP8 bool `yaml:"fp8,omitempty" json:"fp8,omitempty"`
}

// Settings holds engine flags under their real names. Only the engine's own flags are accepted.
// Zero values mean "engine default".
type Settings struct {
	// vLLM.
	GPUMemoryUtilization float64 `yaml:"gpu_memory_utilization,omitempty" json:"gpu_memory_utilization,omitempty"`
	MaxNumSeqs           int     `yaml:"max_num_seqs,omitempty" json:"max_num_seqs,omitempty"`
	MaxNumBatchedTokens  int     `yaml:"max_num_batched_tokens,omitempty" json:"max_num_batched_tokens,omitempty"`
	EnablePrefixCaching  *bool   `yaml:"enable_prefix_caching,omitempty" json:"enable_prefix_caching,omitempty"`
	KVCacheDtype         string  `yaml:"kv_cache_dtype,omitempty" json:"kv_cache_dtype,omitempty"` // also SGLang (fp8_e4m3, fp8_e5m2) and TGI (fp8_e4m3fn, fp8_e5m2)
	BlockSize            int     `yaml:"block_size,omitempty" json:"block_size,omitempty"`
	MaxModelLen          int     `yaml:"max_model_len,omitempty" json:"max_model_len,omitempty"`
	// LongPrefillTokenThreshold caps the prompt tokens one request computes per step
	// (vLLM V1 --long-prefill-token-threshold; 0: no cap).
	LongPrefillTokenThreshold int `yaml:"long_prefill_token_threshold,omitempty" json:"long_prefill_token_threshold,omitempty"`
	// APIServerCount is the number of API server processes (vLLM --api-server-count).
	APIServerCount int `yaml:"api_server_count,omitempty" json:"api_server_count,omitempty"`
	// TensorParallelSize shards the model over that many GPUs of one node
	// (vLLM --tensor-parallel-size; 0: 1).
	TensorParallelSize int `yaml:"tensor_parallel_size,omitempty" json:"tensor_parallel_size,omitempty"`
	// Quantization is the weight format (vLLM and SGLang --quantization;
	// "" or "none": the model dtype, "fp8": one byte per weight, "awq" or
	// "awq_marlin": an AWQ checkpoint, 4 bits and a scale per 128 weights).
	Quantization string `yaml:"quantization,omitempty" json:"quantization,omitempty"`
	// NumSpeculativeTokens is num_speculative_tokens of vLLM's --speculative-config
	// (0: speculative decoding off); SpeculativeMethod its method, ngram or
	// draft_model (default ngram when speculative decoding is on).
	NumSpeculativeTokens int    `yaml:"num_speculative_tokens,omitempty" json:"num_speculative_tokens,omitempty"`
	SpeculativeMethod    string `yaml:"speculative_method,omitempty" json:"speculative_method,omitempty"`
	// SGLang.
	// TPSize is SGLang's tensor-parallel degree (--tp; 0: 1).
	TPSize                   int     `yaml:"tp_size,omitempty" json:"tp_size,omitempty"`
	MemFractionStatic        float64 `yaml:"mem_fraction_static,omitempty" json:"mem_fraction_static,omitempty"`
	MaxRunningRequests       int     `yaml:"max_running_requests,omitempty" json:"max_running_requests,omitempty"`
	ChunkedPrefillSize       int     `yaml:"chunked_prefill_size,omitempty" json:"chunked_prefill_size,omitempty"`
	ScheduleConservativeness float64 `yaml:"schedule_conservativeness,omitempty" json:"schedule_conservativeness,omitempty"`
	MaxPrefillTokens         int     `yaml:"max_prefill_tokens,omitempty" json:"max_prefill_tokens,omitempty"`
	DisableRadixCache        *bool   `yaml:"disable_radix_cache,omitempty" json:"disable_radix_cache,omitempty"`
	// TGI.
	MaxConcurrentRequests int `yaml:"max_concurrent_requests,omitempty" json:"max_concurrent_requests,omitempty"`
	MaxBatchPrefillTokens int `yaml:"max_batch_prefill_tokens,omitempty" json:"max_batch_prefill_tokens,omitempty"`
	MaxBatchTotalTokens   int `yaml:"max_batch_total_tokens,omitempty" json:"max_batch_total_tokens,omitempty"`
	MaxTotalTokens        int `yaml:"max_total_tokens,omitempty" json:"max_total_tokens,omitempty"`
	MaxInputTokens        int `yaml:"max_input_tokens,omitempty" json:"max_input_tokens,omitempty"`
	// NumShard is TGI's tensor-parallel degree (--num-shard; 0: 1).
	NumShard int `yaml:"num_shard,omitempty" json:"num_shard,omitempty"`
	// Quantize is TGI's weight format (--quantize; "" or "none", "fp8", "awq").
	Quantize string `yaml:"quantize,omitempty" json:"quantize,omitempty"`
}

// engineFlags lists the settings each engine accepts, by YAML/JSON name.
var engineFlags = map[Engine][]string{
	EngineVLLM:   {"gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching", "kv_cache_dtype", "block_size", "max_model_len", "long_prefill_token_threshold", "api_server_count", "num_speculative_tokens", "speculative_method", "tensor_parallel_size", "quantization"},
	EngineSGLang: {"mem_fraction_static", "max_running_requests", "chunked_prefill_size", "schedule_conservativeness", "max_prefill_tokens", "disable_radix_cache", "kv_cache_dtype", "tp_size", "quantization"},
	EngineTGI:    {"max_concurrent_requests", "max_batch_prefill_tokens", "max_batch_total_tokens", "max_total_tokens", "max_input_tokens", "kv_cache_dtype", "num_shard", "quantize"},
}

// Workload is the load offered to one server.
type Workload struct {
	// Rate is the mean Poisson arrival rate in requests per second.
	Rate float64 `yaml:"rate" json:"rate"`
	// Profile, when set, makes the rate piecewise linear over time (overrides Rate).
	Profile []RatePoint `yaml:"profile,omitempty" json:"profile,omitempty"`
	// PromptTokens and OutputTokens are the length distributions.
	PromptTokens Dist `yaml:"prompt_tokens" json:"prompt_tokens"`
	OutputTokens Dist `yaml:"output_tokens" json:"output_tokens"`
	// MaxTokens is the client's max_tokens / max_new_tokens; longer outputs stop with "length".
	MaxTokens int `yaml:"max_tokens" json:"max_tokens"`
	// SharedPrefixFraction is the share of each prompt that is a reusable prefix.
	SharedPrefixFraction float64 `yaml:"shared_prefix_fraction" json:"shared_prefix_fraction"`
	// Timeout is the client timeout; older requests are aborted.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// SpecAcceptance is the probability that the target model accepts one
	// draft token of speculative decoding, a property of the prompts and the
	// drafter (0 when speculative decoding is off).
	SpecAcceptance float64 `yaml:"spec_acceptance,omitempty" json:"spec_acceptance,omitempty"`
}

// RatePoint is one point of a piecewise-linear arrival-rate profile.
type RatePoint struct {
	At   Duration `yaml:"at" json:"at"`
	Rate float64  `yaml:"rate" json:"rate"`
}

// Dist is a token-length distribution: lognormal with the given mean and coefficient of
// variation (CV 0 means fixed), clipped to [Min, Max], optionally mixed with a long tail.
type Dist struct {
	Mean         float64 `yaml:"mean" json:"mean"`
	CV           float64 `yaml:"cv" json:"cv"`
	Min          int     `yaml:"min" json:"min"`
	Max          int     `yaml:"max" json:"max"`
	TailFraction float64 `yaml:"tail_fraction" json:"tail_fraction"`
	TailMean     float64 `yaml:"tail_mean" json:"tail_mean"`
}

// Event changes a server's workload and/or settings at a time relative to the start.
// Only the fields present are changed.
type Event struct {
	At       Duration   `yaml:"at"`
	Workload *yaml.Node `yaml:"workload,omitempty"`
	Settings *yaml.Node `yaml:"settings,omitempty"`
}

// UnmarshalYAML keeps the workload and settings nodes for partial application later.
func (e *Event) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: event must be a mapping", n.Line)}}
	}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "at":
			if err := e.At.parse(v.Value); err != nil {
				errs = append(errs, fmt.Sprintf("line %d: at: %v", v.Line, err))
			}
		case "workload":
			e.Workload = v
		case "settings":
			e.Settings = v
		default:
			errs = append(errs, fmt.Sprintf("line %d: field %s not found in type simulator.Event", k.Line, k.Value))
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// ConfigError is a problem in a fleet file, with its position.
type ConfigError struct {
	File  string // file name as given to ParseFleet
	Line  int    // 1-based line, 0 when unknown
	Field string // dotted path such as servers.0.settings.block_size; may be empty
	Msg   string
}

// Error formats the error as file:line: field: message.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadFleet reads and validates a fleet file.
func LoadFleet(path string) (*FleetConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return ParseFleet(path, data)
}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// ParseFleet parses and validates a fleet file; name is used in error messages. Unknown fields
// and bad values are reported as name:line: field: message, joined with errors.Join.
func ParseFleet(name string, data []byte) (*FleetConfig, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlErrors(name, err)
	}
	if len(root.Content) == 0 {
		return nil, &ConfigError{File: name, Msg: "empty fleet file"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cfg FleetConfig
	v := validator{file: name, root: root.Content[0]}
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, yamlErrors(name, err)
		}
		// Type errors leave the rest decoded: report them with the value errors.
		v.errs = append(v.errs, typeErrors(name, te)...)
	}
	v.fleet(&cfg)
	if len(v.errs) > 0 {
		slices.SortStableFunc(v.errs, func(a, b error) int {
			var ca, cb *ConfigError
			errors.As(a, &ca)
			errors.As(b, &cb)
			return ca.Line - cb.Line
		})
		return nil, errors.Join(v.errs...)
	}
	return &cfg, nil
}

func yamlErrors(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.Join(typeErrors(name, te)...)
	}
	return lineError(name, strings.TrimPrefix(err.Error(), "yaml: "))
}

func typeErrors(name string, te *yaml.TypeError) []error {
	errs := make([]error, 0, len(te.Errors))
	for _, e := range te.Errors {
		errs = append(errs, lineError(name, e))
	}
	return errs
}

func lineError(name, msg string) error {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: name, Line: line, Msg: m[2]}
	}
	return &ConfigError{File: name, Msg: msg}
}
