// Package profiles owns perfagent's built-in engine profiles: one Prometheus
// recording-rule file per engine (vLLM, SGLang, TGI, TensorRT-LLM on
// Triton, llama.cpp) mapping its metrics to signals.
// It must not hold Go logic beyond embedding those files.
package profiles
