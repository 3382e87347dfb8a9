package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// instanceSel selects the chosen model server's series.
const instanceSel = `job=~"$job", instance="$instance"`

// sloTarget is the instance's model's target of an SLO series, or the
// default target when its model has none.
func sloTarget(series string) query {
	return q(`max by (model) (`+series+`{job=~"$job"}) * on (model) group_left () max by (model) (llm_instance_info{`+instanceSel+`})
or on () max(`+series+`{job=~"$job", model=""})`, "SLO target")
}

// quantiles graphs the three quantiles of a latency signal.
func quantiles(signal string) query {
	return q(signal+`{`+instanceSel+`}`, "p{{quantile}}")
}

func instance() spec {
	return spec{
		file:  "perfagent-instance.json",
		uid:   "perfagent-instance",
		title: "perfagent / Instance",
		description: "One model server: every signal over time with its SLO targets, its engine settings, " +
			"its bottlenecks (as annotations and a table), the recommendations for it and what it costs.",
		vars: []cog.Builder[dashboard.VariableModel]{
			queryVariable("instance", "Instance", `label_values(llm_instance_info{job=~"$job"}, instance)`, false),
		},
		annotations: []cog.Builder[dashboard.AnnotationQuery]{bottleneckAnnotations(instanceSel)},
		rows: []row{
			{"Now", []cog.Builder[dashboard.Panel]{
				labelTable("Engine and model", "The engine and model the instance serves.", units.Short,
					instantQuery(`llm_instance_info{`+instanceSel+`}`)),
				labelTable("Active bottlenecks", "Bottlenecks of this instance, pending or firing.", units.Short,
					instantQuery(`perfagent_bottleneck{`+instanceSel+`}`)),
				labelTable("Recommendations", "Current recommendations for this instance, with their confidence (0 to 1).", units.PercentUnit,
					instantQuery(`perfagent_recommendation_confidence{`+instanceSel+`} * on (id, instance, engine, model) group_left (flag, current, proposed) perfagent_recommendation_info{`+instanceSel+`}`)),
				labelTable("Expected effects", "The value each signal is expected to take once a recommendation is applied, where a formula gives one (the signal's unit).", units.Short,
					instantQuery(`perfagent_recommendation_expected_value{`+instanceSel+`}`)),
				labelTable("Engine settings", "Settings the agent knows for this instance and where each was read.", units.Short,
					instantQuery(`perfagent_setting_info{`+instanceSel+`}`)),
			}},
			{"Latency", []cog.Builder[dashboard.Panel]{
				timeSeries("Time to first token", "Quantiles of the time from arrival to first token, with the 95th-percentile SLO target.", units.Seconds,
					quantiles("llm_time_to_first_token_seconds"), sloTarget("perfagent_slo_ttft_p95_seconds")),
				timeSeries("Inter-token latency", "Quantiles of the time between two output tokens, with the 95th-percentile SLO target.", units.Seconds,
					quantiles("llm_inter_token_latency_seconds"), sloTarget("perfagent_slo_itl_p95_seconds")),
				timeSeries("Request latency", "Quantiles of the end-to-end request latency.", units.Seconds,
					quantiles("llm_request_latency_seconds")),
				timeSeries("Queue time", "Quantiles of the time a request waited before it was first scheduled.", units.Seconds,
					quantiles("llm_queue_time_seconds")),
				timeSeries("Prefill time", "Quantiles of the time from first scheduling to the first token.", units.Seconds,
					quantiles("llm_prefill_time_seconds")),
				timeSeries("Decode time", "Quantiles of the time from the first to the last output token.", units.Seconds,
					quantiles("llm_decode_time_seconds")),
			}},
			{"Load and memory", []cog.Builder[dashboard.Panel]{
				timeSeries("Requests", "Requests in the running batch and waiting to be scheduled.", units.Short,
					q(`llm_requests_running{`+instanceSel+`}`, "running"), q(`llm_requests_waiting{`+instanceSel+`}`, "waiting")),
				timeSeries("KV cache usage", "Share of the KV cache in use.", units.PercentUnit,
					q(`llm_kv_cache_usage_ratio{`+instanceSel+`}`, "KV cache")),
				timeSeries("Preemptions", "Requests preempted (vLLM) or retracted (SGLang) per second.", units.OpsPerSecond,
					q(`llm_preemptions_per_second{`+instanceSel+`}`, "preemptions")),
				timeSeries("Prefix cache hit ratio", "Share of prompt tokens served from the prefix cache.", units.PercentUnit,
					q(`llm_prefix_cache_hit_ratio{`+instanceSel+`}`, "hit ratio")),
			}},
			{"Throughput and errors", []cog.Builder[dashboard.Panel]{
				timeSeries("Tokens per second", "Prompt tokens processed and output tokens generated per second.", units.Short,
					q(`llm_prompt_tokens_per_second{`+instanceSel+`}`, "prompt"), q(`llm_generation_tokens_per_second{`+instanceSel+`}`, "generated")),
				timeSeries("Finished requests", "Requests finished per second.", units.RequestsPerSecond,
					q(`llm_requests_per_second{`+instanceSel+`}`, "finished")),
				timeSeries("Mean request length", "Mean prompt and output length of finished requests, in tokens.", units.Short,
					q(`llm_prompt_tokens_mean{`+instanceSel+`}`, "prompt"), q(`llm_generation_tokens_mean{`+instanceSel+`}`, "output")),
				timeSeries("Error ratio", "Share of finished requests that failed or were aborted, with the SLO target.", units.PercentUnit,
					q(`llm_request_error_ratio{`+instanceSel+`}`, "errors"), sloTarget("perfagent_slo_error_ratio")),
				timeSeries("Engine restarts", "Counter resets of the finished-request counter within the rate window: restarts of the engine.", units.Short,
					q(`llm_engine_restarts{`+instanceSel+`}`, "restarts")),
				timeSeries("Bottlenecks", "Bottleneck rules active on this instance over time (1 while active), by rule and state.", units.Short,
					q(`perfagent_bottleneck{`+instanceSel+`}`, "{{bottleneck}} {{state}}")),
			}},
			{"Cost", []cog.Builder[dashboard.Panel]{
				timeSeries("Cost per hour", "What the instance's GPUs cost per hour: their count times the price per GPU-hour of its accelerator, "+
					"in the currency of the legend (cost.currency); and the unused share of it while its LLMUnderutilized (B6) bottleneck fires, 0 otherwise. "+
					"Empty when the instance's accelerator has no price (docs/cost.md).", units.Short,
					q(`perfagent_cost_per_hour{`+instanceSel+`}`, "{{currency}} per hour"),
					q(`perfagent_idle_cost_per_hour{`+instanceSel+`} or perfagent_cost_per_hour{`+instanceSel+`} * 0`, "{{currency}} idle per hour")),
				timeSeries("Cost per million tokens", "What a million prompt or generated tokens cost at the instance's token rates, "+
					"the hour's cost split between the directions by weighted tokens (cost.prompt_token_weight), in the currency of the legend. "+
					"Highest when the instance is nearly idle; a direction without tokens has no line (docs/cost.md).", units.Short,
					q(`perfagent_cost_per_million_tokens{`+instanceSel+`}`, "{{direction}} ({{currency}})")),
			}},
		},
	}
}
