package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// fleetSel selects the signals of the chosen engines and models.
const fleetSel = `job=~"$job", engine=~"$engine", model=~"$model"`

func fleet() spec {
	return spec{
		file:  "perfagent-fleet.json",
		uid:   "perfagent-fleet",
		title: "perfagent / Fleet",
		description: "Every model server perfagent watches: instances by engine and model, their latency, load, KV cache and errors, " +
			"active bottlenecks and the recommendations that address them.",
		vars: []cog.Builder[dashboard.VariableModel]{
			queryVariable("engine", "Engine", `label_values(llm_instance_info{job=~"$job"}, engine)`, true),
			queryVariable("model", "Model", `label_values(llm_instance_info{job=~"$job", engine=~"$engine"}, model)`, true),
		},
		annotations: []cog.Builder[dashboard.AnnotationQuery]{bottleneckAnnotations(fleetSel)},
		rows: []row{
			{"Fleet", []cog.Builder[dashboard.Panel]{
				singleStat("Instances", "Model servers seen in the last collection, by engine.", units.Short, 6,
					q(`sum by (engine) (perfagent_instances{job=~"$job", engine=~"$engine"})`, "{{engine}}")),
				singleStat("Firing bottlenecks", "Bottleneck rules firing now, over the chosen engines and models.", units.Short, 6,
					q(`count(perfagent_bottleneck{`+fleetSel+`, state="firing"}) or vector(0)`, "firing")),
				singleStat("Recommendations", "Current recommendations for the chosen engines and models.", units.Short, 6,
					q(`count(perfagent_recommendation_info{`+fleetSel+`}) or vector(0)`, "recommendations")),
				singleStat("Source up", "Whether the agent's last query to its metrics source succeeded (1).", units.NoUnit, 6,
					q(`min(perfagent_source_up{job=~"$job"})`, "source up")),
				labelTable("Instances by engine and model", "How many model servers serve each model on each engine.", units.Short,
					instantQuery(`count by (engine, model) (llm_instance_info{`+fleetSel+`})`)),
			}},
			{"Latency", []cog.Builder[dashboard.Panel]{
				timeSeries("Time to first token p95", "95th percentile of the time from a request's arrival to its first token, per instance.", units.Seconds,
					q(`llm_time_to_first_token_seconds{`+fleetSel+`, quantile="0.95"}`, "{{instance}} {{model}}")),
				timeSeries("Inter-token latency p95", "95th percentile of the time between two output tokens, per instance.", units.Seconds,
					q(`llm_inter_token_latency_seconds{`+fleetSel+`, quantile="0.95"}`, "{{instance}} {{model}}")),
			}},
			{"Load", []cog.Builder[dashboard.Panel]{
				timeSeries("Waiting requests", "Requests queued for scheduling, per instance.", units.Short,
					q(`llm_requests_waiting{`+fleetSel+`}`, "{{instance}}")),
				timeSeries("KV cache usage", "Share of the KV cache in use, per instance.", units.PercentUnit,
					q(`llm_kv_cache_usage_ratio{`+fleetSel+`}`, "{{instance}}")),
				timeSeries("Preemptions", "Requests preempted (vLLM) or retracted (SGLang) per second, per instance; TGI does not preempt.", units.OpsPerSecond,
					q(`llm_preemptions_per_second{`+fleetSel+`}`, "{{instance}}")),
				timeSeries("Generated tokens", "Output tokens generated per second, per model.", units.Short,
					q(`sum by (model) (llm_generation_tokens_per_second{`+fleetSel+`})`, "{{model}}")),
				timeSeries("Finished requests", "Requests finished per second, per model.", units.RequestsPerSecond,
					q(`sum by (model) (llm_requests_per_second{`+fleetSel+`})`, "{{model}}")),
				timeSeries("Error ratio", "Share of finished requests that failed or were aborted, per instance.", units.PercentUnit,
					q(`llm_request_error_ratio{`+fleetSel+`}`, "{{instance}}")),
				labelTable("Time to saturation", "Where the KV cache (resource kv_cache, to 90 %) or the queue (resource queue, to 5 waiting) "+
					"of an instance or of a model pool grows toward its limit: the time until its 15-minute trend reaches it (docs/forecasts.md). "+
					"Empty when no saturation is ahead.", units.Seconds,
					instantQuery(`perfagent_saturation_eta_seconds{engine=~"$engine", model=~"$model"}`)),
			}},
			{"Cost", []cog.Builder[dashboard.Panel]{
				singleStat("Cost per hour", "What the chosen instances' GPUs cost per hour, from cost.gpu_hour_prices, one figure per currency (cost.currency): "+
					"agents that price in different currencies are not added together (docs/cost.md). Empty without prices.", units.Short, 8,
					q(`sum by (currency) (perfagent_cost_per_hour{`+fleetSel+`})`, "{{currency}} per hour")),
				singleStat("Idle GPU cost per hour", "The unused share of the hourly cost of instances whose LLMUnderutilized (B6) bottleneck fires, "+
					"one figure per currency; 0 when none fires (docs/cost.md).", units.Short, 8,
					q(`sum by (currency) (perfagent_idle_cost_per_hour{`+fleetSel+`}) or sum by (currency) (perfagent_cost_per_hour{`+fleetSel+`}) * 0`, "{{currency}} idle per hour")),
				labelTable("Cost per hour by instance", "Each priced instance's GPUs times the price per GPU-hour of its accelerator, in the currency of its currency column (docs/cost.md).", units.Short,
					instantQuery(`perfagent_cost_per_hour{`+fleetSel+`}`)),
				timeSeries("Cost per million tokens", "What a million prompt or generated tokens cost at each instance's token rates, the hour's cost split between the directions by weighted tokens, in the currency of the legend (docs/cost.md).", units.Short,
					q(`perfagent_cost_per_million_tokens{`+fleetSel+`}`, "{{instance}} {{direction}} ({{currency}})")),
			}},
			{"Bottlenecks and recommendations", []cog.Builder[dashboard.Panel]{
				timeSeries("Firing bottlenecks by category", "Bottleneck rules firing, counted by category (memory, latency, throughput, utilization, errors).", units.Short,
					q(`count by (category) (perfagent_bottleneck{`+fleetSel+`, state="firing"})`, "{{category}}")),
				timeSeries("Bottleneck transitions", "Bottlenecks that turned firing, by rule.", units.Short,
					q(`sum by (bottleneck) (increase(perfagent_bottlenecks_detected_total{`+fleetSel+`}[$__rate_interval]))`, "{{bottleneck}}")),
				labelTable("Active bottlenecks", "Every active bottleneck (pending or firing) with its rule, category, severity and model server.", units.Short,
					instantQuery(`perfagent_bottleneck{`+fleetSel+`}`)),
				labelTable("Top recommendations", "The ten most confident current recommendations: the flag, its current and proposed value, and the confidence (0 to 1).", units.PercentUnit,
					instantQuery(`topk(10, perfagent_recommendation_confidence{`+fleetSel+`} * on (id, instance, engine, model) group_left (flag, current, proposed) perfagent_recommendation_info{`+fleetSel+`})`)),
			}},
		},
	}
}

// bottleneckAnnotations marks where bottlenecks were firing.
func bottleneckAnnotations(sel string) *dashboard.AnnotationQueryBuilder {
	return dashboard.NewAnnotationQueryBuilder().
		Name("Bottlenecks").
		Datasource(datasource).
		Enable(true).
		IconColor("red").
		Expr(`perfagent_bottleneck{` + sel + `, state="firing"}`).
		TitleFormat("{{bottleneck}} ({{severity}})").
		TextFormat("{{instance}} {{model}}").
		TagKeys("category,severity,instance").
		Step("1m")
}
