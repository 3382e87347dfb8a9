package signals

import "github.com/prometheus/prometheus/model/labels"

// Engines that perfagent knows by name. Other names are accepted when a
// profile for them is loaded from a file.
const (
	EngineVLLM   = "vllm"
	EngineSGLang = "sglang"
	EngineTGI    = "tgi"
	// EngineTRTLLM is TensorRT-LLM served by Triton Inference Server.
	EngineTRTLLM = "trtllm"
	// EngineLlamaCpp is llama.cpp's llama-server.
	EngineLlamaCpp = "llamacpp"
)

// Identity labels that every signal carries.
const (
	LabelInstance = "instance"
	LabelEngine   = "engine"
	LabelModel    = "model"
	LabelQuantile = "quantile"
)

// InstanceInfo is the first rule of every engine profile: one series
// per serving instance, built from a gauge the engine always exports. An
// instance absent from it has no signals in that cycle, which is how a
// server that disappears stops producing signals within one scrape.
const InstanceInfo = "llm_instance_info"

// KVCacheCapacity is computed by the collector for engines that
// report their capacity only as label values (vLLM's cache_config_info).
const KVCacheCapacity = "llm_kv_cache_capacity_tokens"

// The host and frontend gap (bottleneck B13), from engines that export
// end-to-end, queue and inference time histograms.
const (
	FrontendGap      = "llm_frontend_gap_seconds_mean"
	FrontendGapRatio = "llm_frontend_gap_ratio"
)

// Speculative decoding (bottleneck B11), from engines that count draft
// and accepted tokens; absent while speculative decoding is off.
const (
	SpecDecodeAcceptanceRatio  = "llm_spec_decode_acceptance_ratio"
	SpecDecodeAcceptanceLength = "llm_spec_decode_acceptance_length_mean"
)

// Signals derived from settings rather than computed by profiles.
const (
	MaxRunningRequests   = "llm_max_running_requests"
	PrefixCachingEnabled = "llm_prefix_caching_enabled"
)

// Signal describes one normalized signal.
type Signal struct {
	Name string `json:"name"`
	Unit string `json:"unit"`
	Help string `json:"help"`
	// Quantiles is true for latency signals, which carry a quantile label
	// with the values 0.5, 0.95 and 0.99.
	Quantiles bool `json:"quantiles"`
}

// All returns the catalog of normalized signals in documentation
// order. Profiles may record other names; these are the ones perfagent's
// own rules and documentation rely on.
func All() []Signal {
	return []Signal{
		{InstanceInfo, "", "Serving instance seen this cycle, with its engine and model (value 1).", false},
		{"llm_time_to_first_token_seconds", "seconds", "Time from request arrival to its first output token.", true},
		{"llm_inter_token_latency_seconds", "seconds", "Time between two output tokens of one request.", true},
		{"llm_request_latency_seconds", "seconds", "End-to-end request latency, arrival to last token.", true},
		{"llm_queue_time_seconds", "seconds", "Time a request waited before it was first scheduled.", true},
		{"llm_prefill_time_seconds", "seconds", "Time from first scheduling to the first token (prompt processing).", true},
		{"llm_decode_time_seconds", "seconds", "Time from the first to the last output token.", true},
		{FrontendGap, "seconds", "Mean time of a finished request outside the engine's queue and batch (tokenization, API process, detokenization): mean end-to-end minus mean queue minus mean inference time.", false},
		{FrontendGapRatio, "ratio", "The frontend gap as a share of the mean end-to-end latency.", false},
		{"llm_requests_running", "requests", "Requests in the running batch.", false},
		{"llm_requests_waiting", "requests", "Requests waiting to be scheduled.", false},
		{"llm_kv_cache_usage_ratio", "ratio", "Share of the KV cache in use (0 to 1), highest over the engine's ranks.", false},
		{KVCacheCapacity, "tokens", "KV-cache capacity in tokens.", false},
		{MaxRunningRequests, "requests", "Configured cap on requests in the running batch (vLLM --max-num-seqs, SGLang --max-running-requests, TGI --max-concurrent-requests, TensorRT-LLM max_batch_size, llama.cpp --parallel), from the instance's settings.", false},
		{PrefixCachingEnabled, "", "1 when prefix caching is on (vLLM --enable-prefix-caching, SGLang radix cache), 0 when off, from the instance's settings.", false},
		{"llm_preemptions_per_second", "1/s", "Requests preempted (vLLM) or retracted (SGLang) per second.", false},
		{"llm_prefix_cache_hit_ratio", "ratio", "Share of prompt tokens served from the prefix cache.", false},
		{"llm_requests_per_second", "1/s", "Finished requests per second.", false},
		{"llm_request_error_ratio", "ratio", "Share of finished requests that failed or were aborted.", false},
		{"llm_prompt_tokens_per_second", "tokens/s", "Prompt tokens processed per second.", false},
		{"llm_generation_tokens_per_second", "tokens/s", "Output tokens generated per second.", false},
		{"llm_prompt_tokens_mean", "tokens", "Mean prompt length of finished requests.", false},
		{"llm_generation_tokens_mean", "tokens", "Mean output length of finished requests.", false},
		{SpecDecodeAcceptanceRatio, "ratio", "Share of speculative draft tokens the target model accepted; absent while speculative decoding is off.", false},
		{SpecDecodeAcceptanceLength, "tokens", "Mean tokens a speculative verify step emits per sequence: 1 + accepted tokens per draft; absent while speculative decoding is off.", false},
		{"llm_engine_restarts", "resets", "Counter resets of the instance's finished-request counter (TGI: received requests) within the rate window: a restart of the engine.", false},
	}
}

// catalogByName indexes All by name. It is built once and only read:
// rules look signals up for every alert of every evaluation.
var catalogByName = func() map[string]Signal {
	m := map[string]Signal{}
	for _, s := range All() {
		m[s.Name] = s
	}
	return m
}()

// Lookup returns the catalog entry of a signal name.
func Lookup(name string) (Signal, bool) {
	s, ok := catalogByName[name]
	return s, ok
}

// Sample is one signal series and its value.
type Sample struct {
	Labels labels.Labels `json:"labels"`
	Value  float64       `json:"value"`
}

// Value is one signal of one instance.
type Value struct {
	Name     string  `json:"name"`
	Quantile string  `json:"quantile,omitempty"`
	Value    float64 `json:"value"`
}
