package simulator

import (
	"math"
	"strconv"
)

// buildFamilies lays out the server's exposition; values are read from the server when written.
func buildFamilies(s *Server) []family {
	switch s.cfg.Engine {
	case EngineVLLM:
		if s.cfg.MetricsVersion == "v0" {
			return vllmV0Families(s)
		}
		return vllmV1Families(s)
	case EngineSGLang:
		return sglangFamilies(s)
	case EngineTGI:
		return tgiFamilies(s)
	}
	return nil
}

func val(p *float64) func() float64 { return func() float64 { return *p } }

func one(ls []label, v func() float64) []series { return []series{{labels: ls, value: v}} }

func hist(ls []label, h *histogram) []series { return []series{{labels: ls, hist: h}} }

func with(ls []label, extra ...label) []label {
	return sortedLabels(append(append([]label(nil), ls...), extra...)...)
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func vllmCommon(s *Server, base []label) (running, waiting, usage func() float64, finished []series) {
	running = func() float64 { return float64(len(s.running)) }
	waiting = func() float64 { return float64(s.waiting.len()) }
	usage = s.kvUsage
	zero := 0.0
	for _, r := range []struct {
		reason string
		v      *float64
	}{{"stop", &s.st.stop}, {"length", &s.st.length}, {"abort", &s.st.abort}, {"error", &zero}} {
		finished = append(finished, series{labels: with(base, label{"finished_reason", r.reason}), value: val(r.v)})
	}
	return running, waiting, usage, finished
}

// processStartTime is prometheus_client's process_start_time_seconds: the
// process start read from /proc, in clock ticks of 1/100 s.
func processStartTime(s *Server) family {
	return family{name: "process_start_time_seconds", typ: typeGauge, help: "Start time of the process since unix epoch in seconds.",
		series: one(nil, func() float64 { return math.Round(float64(s.processStart().UnixNano())/1e7) / 100 })}
}

// vllmV1Families starts with the process start time: V1's API server serves
// /metrics from prometheus_client's default registry, whose process
// collector comes first. V0 and SGLang serve it from the multiprocess
// collector, and TGI from a Rust exporter, neither of which has process
// metrics.
func vllmV1Families(s *Server) []family {
	base := sortedLabels(label{"engine", "0"}, label{"model_name", s.cfg.Model.Name})
	running, waiting, usage, finished := vllmCommon(s, base)
	h := s.h
	p := s.p
	zero := func() float64 { return 0 }
	return append([]family{
		processStartTime(s),
		{name: "vllm:num_requests_running", typ: typeGauge, help: "Number of requests in model execution batches.", series: one(base, running)},
		{name: "vllm:num_requests_waiting", typ: typeGauge, help: "Number of requests waiting to be processed.", series: one(base, waiting)},
		{name: "vllm:num_requests_waiting_by_reason", typ: typeGauge, help: "Number of requests waiting to be processed, by reason.", series: []series{
			{labels: with(base, label{"reason", "capacity"}), value: waiting},
			{labels: with(base, label{"reason", "deferred"}), value: zero},
		}},
		{name: "vllm:kv_cache_usage_perc", typ: typeGauge, help: "KV-cache usage. 1 means 100 percent usage.", series: one(base, usage)},
		{name: "vllm:prefix_cache_queries_total", typ: typeCounter, help: "Prefix cache queries, in terms of number of queried tokens.", series: one(base, val(&s.st.prefixQueries))},
		{name: "vllm:prefix_cache_hits_total", typ: typeCounter, help: "Prefix cache hits, in terms of number of cached tokens.", series: one(base, val(&s.st.prefixHits))},
		{name: "vllm:num_preemptions_total", typ: typeCounter, help: "Cumulative number of preemption from the engine.", series: one(base, val(&s.st.preemptions))},
		{name: "vllm:prompt_tokens_total", typ: typeCounter, help: "Number of prefill tokens processed.", series: one(base, val(&s.st.promptTokens))},
		{name: "vllm:generation_tokens_total", typ: typeCounter, help: "Number of generation tokens processed.", series: one(base, val(&s.st.genTokens))},
		{name: "vllm:request_success_total", typ: typeCounter, help: "Count of successfully processed requests.", series: finished},
		{name: "vllm:request_prompt_tokens", typ: typeHistogram, help: "Number of prefill tokens processed.", series: hist(base, h.promptLen)},
		{name: "vllm:request_generation_tokens", typ: typeHistogram, help: "Number of generation tokens processed.", series: hist(base, h.genLen)},
		{name: "vllm:iteration_tokens_total", typ: typeHistogram, help: "Histogram of number of tokens per engine_step.", series: hist(base, h.iterTokens)},
		{name: "vllm:request_max_num_generation_tokens", typ: typeHistogram, help: "Histogram of maximum number of requested generation tokens.", series: hist(base, h.maxGen)},
		{name: "vllm:request_params_n", typ: typeHistogram, help: "Histogram of the n request parameter.", series: hist(base, h.paramsN)},
		{name: "vllm:request_params_max_tokens", typ: typeHistogram, help: "Histogram of the max_tokens request parameter.", series: hist(base, h.paramsMax)},
		{name: "vllm:time_to_first_token_seconds", typ: typeHistogram, help: "Histogram of time to first token in seconds.", series: hist(base, h.ttft)},
		{name: "vllm:inter_token_latency_seconds", typ: typeHistogram, help: "Histogram of inter-token latency in seconds.", series: hist(base, h.itl)},
		{name: "vllm:request_time_per_output_token_seconds", typ: typeHistogram, help: "Histogram of time_per_output_token_seconds per request.", series: hist(base, h.tpot)},
		{name: "vllm:e2e_request_latency_seconds", typ: typeHistogram, help: "Histogram of e2e request latency in seconds.", series: hist(base, h.e2e)},
		{name: "vllm:request_queue_time_seconds", typ: typeHistogram, help: "Histogram of time spent in WAITING phase for request.", series: hist(base, h.queue)},
		{name: "vllm:request_inference_time_seconds", typ: typeHistogram, help: "Histogram of time spent in RUNNING phase for request.", series: hist(base, h.inference)},
		{name: "vllm:request_prefill_time_seconds", typ: typeHistogram, help: "Histogram of time spent in PREFILL phase for request.", series: hist(base, h.prefill)},
		{name: "vllm:request_decode_time_seconds", typ: typeHistogram, help: "Histogram of time spent in DECODE phase for request.", series: hist(base, h.decode)},
		{name: "vllm:cache_config_info", typ: typeGauge, help: "Information of the LLMEngine CacheConfig", series: one(sortedLabels(
			label{"block_size", strconv.Itoa(p.s.BlockSize)},
			label{"cache_dtype", p.s.KVCacheDtype},
			label{"calculate_kv_scales", "False"},
			label{"cpu_offload_gb", "0"},
			label{"enable_prefix_caching", pyBool(p.prefixCache)},
			label{"engine", "0"},
			label{"gpu_memory_utilization", pyRepr(p.s.GPUMemoryUtilization)},
			label{"is_attention_free", "False"},
			label{"num_cpu_blocks", "None"},
			label{"num_gpu_blocks", strconv.Itoa(p.kvUnits)},
			label{"num_gpu_blocks_override", "None"},
			label{"prefix_caching_hash_algo", "builtin"},
			label{"sliding_window", "None"},
			label{"swap_space", "4"},
		), func() float64 { return 1 })},
	}, vllmSpecFamilies(s, base)...)
}

func vllmV0Families(s *Server) []family {
	base := []label{{"model_name", s.cfg.Model.Name}}
	running, waiting, usage, finished := vllmCommon(s, base)
	h := s.h
	p := s.p
	zero := func() float64 { return 0 }
	hitRate := func() float64 {
		if !p.prefixCache {
			return -1
		}
		if s.st.prefixQueries == 0 {
			return 0
		}
		return s.st.prefixHits / s.st.prefixQueries
	}
	return []family{
		{name: "vllm:num_requests_running", typ: typeGauge, help: "Number of requests currently running on GPU.", series: one(base, running)},
		{name: "vllm:num_requests_swapped", typ: typeGauge, help: "Number of requests swapped to CPU.", series: one(base, zero)},
		{name: "vllm:num_requests_waiting", typ: typeGauge, help: "Number of requests waiting to be processed.", series: one(base, waiting)},
		{name: "vllm:gpu_cache_usage_perc", typ: typeGauge, help: "GPU KV-cache usage. 1 means 100 percent usage.", series: one(base, usage)},
		{name: "vllm:cpu_cache_usage_perc", typ: typeGauge, help: "CPU KV-cache usage. 1 means 100 percent usage.", series: one(base, zero)},
		{name: "vllm:cpu_prefix_cache_hit_rate", typ: typeGauge, help: "CPU prefix cache block hit rate.", series: one(base, func() float64 { return -1 })},
		{name: "vllm:gpu_prefix_cache_hit_rate", typ: typeGauge, help: "GPU prefix cache block hit rate.", series: one(base, hitRate)},
		{name: "vllm:num_preemptions_total", typ: typeCounter, help: "Cumulative number of preemption from the engine.", series: one(base, val(&s.st.preemptions))},
		{name: "vllm:prompt_tokens_total", typ: typeCounter, help: "Number of prefill tokens processed.", series: one(base, val(&s.st.promptTokens))},
		{name: "vllm:generation_tokens_total", typ: typeCounter, help: "Number of generation tokens processed.", series: one(base, val(&s.st.genTokens))},
		{name: "vllm:request_success_total", typ: typeCounter, help: "Count of successfully processed requests.", series: finished[:3]},
		{name: "vllm:iteration_tokens_total", typ: typeHistogram, help: "Histogram of number of tokens per engine_step.", series: hist(base, h.iterTokens)},
		{name: "vllm:time_to_first_token_seconds", typ: typeHistogram, help: "Histogram of time to first token in seconds.", series: hist(base, h.ttft)},
		{name: "vllm:time_per_output_token_seconds", typ: typeHistogram, help: "Histogram of time per output token in seconds.", series: hist(base, h.itl)},
		{name: "vllm:e2e_request_latency_seconds", typ: typeHistogram, help: "Histogram of end to end request latency in seconds.", series: hist(base, h.e2e)},
		{name: "vllm:request_queue_time_seconds", typ: typeHistogram, help: "Histogram of time spent in WAITING phase for request.", series: hist(base, h.queue)},
		{name: "vllm:request_inference_time_seconds", typ: typeHistogram, help: "Histogram of time spent in RUNNING phase for request.", series: hist(base, h.inference)},
		{name: "vllm:request_prefill_time_seconds", typ: typeHistogram, help: "Histogram of time spent in PREFILL phase for request.", series: hist(base, h.prefill)},
		{name: "vllm:request_decode_time_seconds", typ: typeHistogram, help: "Histogram of time spent in DECODE phase for request.", series: hist(base, h.decode)},
		{name: "vllm:request_prompt_tokens", typ: typeHistogram, help: "Number of prefill tokens processed.", series: hist(base, h.promptLen)},
		{name: "vllm:request_generation_tokens", typ: typeHistogram, help: "Number of generation tokens processed.", series: hist(base, h.genLen)},
		{name: "vllm:request_max_num_generation_tokens", typ: typeHistogram, help: "Histogram of maximum number of requested generation tokens.", series: hist(base, h.maxGen)},
		{name: "vllm:request_params_n", typ: typeHistogram, help: "Histogram of the n request parameter.", series: hist(base, h.paramsN)},
		{name: "vllm:request_params_max_tokens", typ: typeHistogram, help: "Histogram of the max_tokens request parameter.", series: hist(base, h.paramsMax)},
		{name: "vllm:cache_config_info", typ: typeGauge, help: "Information of the LLMEngine CacheConfig", series: one(sortedLabels(
			label{"block_size", strconv.Itoa(p.s.BlockSize)},
			label{"cache_dtype", p.s.KVCacheDtype},
			label{"calculate_kv_scales", "False"},
			label{"cpu_offload_gb", "0"},
			label{"enable_prefix_caching", pyBool(p.prefixCache)},
			label{"gpu_memory_utilization", pyRepr(p.s.GPUMemoryUtilization)},
			label{"is_attention_free", "False"},
			label{"num_cpu_blocks", "2048"},
			label{"num_gpu_blocks", strconv.Itoa(p.kvUnits)},
			label{"num_gpu_blocks_override", "None"},
			label{"sliding_window", "None"},
			label{"swap_space_bytes", "4294967296"},
		), func() float64 { return 1 })},
	}
}

func sglangFamilies(s *Server) []family {
	sched := sortedLabels(label{"engine_type", "unified"}, label{"model_name", s.cfg.Model.Name},
		label{"moe_ep_rank", "0"}, label{"pp_rank", "0"}, label{"tp_rank", "0"})
	tok := sortedLabels(label{"engine_type", "unified"}, label{"model_name", s.cfg.Model.Name})
	h := s.h
	p := s.p
	return []family{
		{name: "sglang:num_running_reqs", typ: typeGauge, help: "The number of running requests.", series: one(sched, func() float64 { return float64(len(s.running)) })},
		{name: "sglang:num_queue_reqs", typ: typeGauge, help: "The number of requests in the waiting queue.", series: one(sched, func() float64 { return float64(s.waiting.len()) })},
		{name: "sglang:num_used_tokens", typ: typeGauge, help: "The number of used tokens.", series: one(sched, func() float64 { return float64(s.used) })},
		{name: "sglang:token_usage", typ: typeGauge, help: "The token usage.", series: one(sched, s.kvUsage)},
		{name: "sglang:max_total_num_tokens", typ: typeGauge, help: "Maximum total number of tokens in the KV cache pool.", series: one(sched, func() float64 { return float64(p.kvTokens) })},
		{name: "sglang:gen_throughput", typ: typeGauge, help: "The generation throughput (token/s).", series: one(sched, val(&s.st.genThroughput))},
		{name: "sglang:cache_hit_rate", typ: typeGauge, help: "The prefix cache hit rate.", series: one(sched, val(&s.st.cacheHitRate))},
		{name: "sglang:new_token_ratio", typ: typeGauge, help: "The new token ratio.", series: one(sched, val(&s.newTokenRatio))},
		{name: "sglang:num_retracted_reqs", typ: typeGauge, help: "The number of retracted requests.", series: one(sched, val(&s.st.lastRetract))},
		{name: "sglang:num_retracted_requests_total", typ: typeCounter, help: "Total number of retracted requests.", series: one(sched, val(&s.st.retracted))},
		{name: "sglang:num_retracted_input_tokens_total", typ: typeCounter, help: "Total number of retracted input tokens.", series: one(sched, val(&s.st.retractedIn))},
		{name: "sglang:num_retracted_output_tokens_total", typ: typeCounter, help: "Total number of retracted output tokens.", series: one(sched, val(&s.st.retractedOut))},
		{name: "sglang:queue_time_seconds", typ: typeHistogram, help: "Histogram of queueing time in seconds.", series: hist(sched, h.sgQueue)},
		{name: "sglang:prompt_tokens_total", typ: typeCounter, help: "Number of prefill tokens processed.", series: one(tok, val(&s.st.promptTokens))},
		{name: "sglang:generation_tokens_total", typ: typeCounter, help: "Number of generation tokens processed.", series: one(tok, val(&s.st.genTokens))},
		{name: "sglang:cached_tokens_total", typ: typeCounter, help: "Number of cached prompt tokens.", series: []series{
			{labels: with(tok, label{"cache_source", "device"}), value: val(&s.st.cachedTokens)},
			{labels: with(tok, label{"cache_source", "total"}), value: val(&s.st.cachedTokens)},
		}},
		{name: "sglang:num_requests_total", typ: typeCounter, help: "Number of requests processed.", series: one(tok, val(&s.st.finished))},
		{name: "sglang:num_aborted_requests_total", typ: typeCounter, help: "Number of requests aborted.", series: one(tok, val(&s.st.abort))},
		{name: "sglang:time_to_first_token_seconds", typ: typeHistogram, help: "Histogram of time to first token in seconds.", series: hist(tok, h.ttft)},
		{name: "sglang:inter_token_latency_seconds", typ: typeHistogram, help: "Histogram of inter-token latency in seconds.", series: hist(tok, h.itl)},
		{name: "sglang:e2e_request_latency_seconds", typ: typeHistogram, help: "Histogram of End-to-end request latency in seconds", series: hist(tok, h.e2e)},
		{name: "sglang:prompt_tokens_histogram", typ: typeHistogram, help: "Histogram of prompt token length.", series: hist(tok, h.promptLen)},
		{name: "sglang:generation_tokens_histogram", typ: typeHistogram, help: "Histogram of generation token length.", series: hist(tok, h.genLen)},
	}
}

func tgiFamilies(s *Server) []family {
	h := s.h
	p := s.p
	m := func(method string) []label { return []label{{"method", method}} }
	perMethod := func(hs [2]*histogram) []series {
		return []series{{labels: m("prefill"), hist: hs[0]}, {labels: m("decode"), hist: hs[1]}}
	}
	zero := 0.0
	return []family{
		{name: "tgi_request_count", typ: typeCounter, help: "Total number of requests", series: one(nil, val(&s.st.arrived))},
		{name: "tgi_request_success", typ: typeCounter, help: "Number of successful requests", series: one(nil, val(&s.st.finished))},
		{name: "tgi_request_failure", typ: typeCounter, series: []series{
			{labels: []label{{"err", "validation"}}, value: val(&s.st.failValidation)},
			{labels: []label{{"err", "overloaded"}}, value: val(&s.st.failOverloaded)},
			{labels: []label{{"err", "dropped"}}, value: val(&s.st.failDropped)},
		}},
		{name: "tgi_batch_concat", typ: typeCounter, series: []series{{labels: []label{{"reason", "chunking"}}, value: val(&s.st.concat)}}},
		{name: "tgi_batch_inference_count", typ: typeCounter, help: "Inference calls per method (prefill or decode)", series: []series{
			{labels: m("prefill"), value: val(&s.st.prefillSteps)}, {labels: m("decode"), value: val(&s.st.decodeSteps)},
		}},
		{name: "tgi_batch_inference_success", typ: typeCounter, help: "Number of successful inference calls per method (prefill or decode)", series: []series{
			{labels: m("prefill"), value: val(&s.st.prefillSteps)}, {labels: m("decode"), value: val(&s.st.decodeSteps)},
		}},
		{name: "tgi_batch_inference_failure", typ: typeCounter, help: "Number of failed inference calls per method (prefill or decode)", series: []series{
			{labels: m("prefill"), value: val(&zero)}, {labels: m("decode"), value: val(&zero)},
		}},
		{name: "tgi_queue_size", typ: typeGauge, help: "Current queue size", series: one(nil, func() float64 { return float64(s.waiting.len()) })},
		{name: "tgi_batch_current_size", typ: typeGauge, help: "Current batch size", series: one(nil, func() float64 { return float64(len(s.running)) })},
		{name: "tgi_batch_current_max_tokens", typ: typeGauge, help: "Maximum tokens for the current batch", series: one(nil, func() float64 { return float64(s.used) })},
		{name: "tgi_batch_max_total_tokens", typ: typeGauge, help: "Maximum amount of tokens in total.", series: one(nil, func() float64 { return float64(p.kvTokens) })},
		{name: "tgi_request_duration", typ: typeHistogram, help: "Request duration", series: hist(nil, h.tgiDuration)},
		{name: "tgi_request_validation_duration", typ: typeHistogram, help: "Request validation duration", series: hist(nil, h.tgiValidation)},
		{name: "tgi_request_queue_duration", typ: typeHistogram, help: "Request queue duration", series: hist(nil, h.tgiQueue)},
		{name: "tgi_request_inference_duration", typ: typeHistogram, help: "Request inference duration", series: hist(nil, h.tgiInference)},
		{name: "tgi_request_mean_time_per_token_duration", typ: typeHistogram, help: "Mean time per token per request", series: hist(nil, h.tgiMeanTPT)},
		{name: "tgi_request_generated_tokens", typ: typeHistogram, help: "Generated tokens per request", series: hist(nil, h.tgiGenerated)},
		{name: "tgi_request_input_length", typ: typeHistogram, help: "Input token length per request", series: hist(nil, h.tgiInput)},
		{name: "tgi_request_max_new_tokens", typ: typeHistogram, help: "Maximum new tokens per request", series: hist(nil, h.tgiMaxNew)},
		{name: "tgi_request_skipped_tokens", typ: typeSummary, help: "Speculated tokens per request", series: one(nil, val(&s.st.genTokens))},
		{name: "tgi_batch_next_size", typ: typeHistogram, help: "Batch size of the next batch", series: hist(nil, h.tgiNextSize)},
		{name: "tgi_batch_inference_duration", typ: typeHistogram, help: "Batch inference duration", series: perMethod(h.tgiBatchInf)},
		{name: "tgi_batch_forward_duration", typ: typeHistogram, help: "Batch forward duration per method (prefill or decode)", series: perMethod(h.tgiForward)},
		{name: "tgi_batch_decode_duration", typ: typeHistogram, help: "Batch decode duration per method (prefill or decode)", series: perMethod(h.tgiDecodeDur)},
		{name: "tgi_batch_filter_duration", typ: typeHistogram, help: "Batch filter duration per method (prefill or decode)", series: perMethod(h.tgiFilter)},
		{name: "tgi_batch_concat_duration", typ: typeHistogram, help: "Batch concat duration", series: []series{{labels: m("decode"), hist: h.tgiConcatDur}}},
	}
}
