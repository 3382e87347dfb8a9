package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// selfSel selects the chosen agents' own series.
const selfSel = `job=~"$job", instance=~"$instance"`

// p99 is the 99th percentile of a histogram, by the given labels.
func p99(histogram, by string) string {
	return `histogram_quantile(0.99, sum by (le` + by + `) (rate(` + histogram + `_bucket{` + selfSel + `}[$__rate_interval])))`
}

func agent() spec {
	return spec{
		file:        "perfagent-agent.json",
		uid:         "perfagent-agent",
		title:       "perfagent / Agent",
		description: "perfagent itself: collection, queries to its source, rule evaluation, notifications to Alertmanager, reloads, its API and its memory.",
		vars: []cog.Builder[dashboard.VariableModel]{
			queryVariable("instance", "Instance", `label_values(perfagent_build_info{job=~"$job"}, instance)`, true),
		},
		rows: []row{
			{"Health", []cog.Builder[dashboard.Panel]{
				singleStat("Up", "Whether Prometheus could scrape the agent.", units.NoUnit, 6, q(`up{`+selfSel+`}`, "{{instance}}")),
				singleStat("Source up", "Whether the agent's last query to its metrics source succeeded.", units.NoUnit, 6, q(`perfagent_source_up{`+selfSel+`}`, "{{instance}}")),
				singleStat("Last reload successful", "Whether the last configuration reload was applied.", units.NoUnit, 6, q(`perfagent_config_last_reload_successful{`+selfSel+`}`, "{{instance}}")),
				singleStat("Alertmanagers", "Alertmanagers the agent sends alerts to.", units.Short, 6, q(`perfagent_notifications_alertmanagers_discovered{`+selfSel+`}`, "{{instance}}")),
			}},
			{"Collection and rules", []cog.Builder[dashboard.Panel]{
				timeSeries("Collection duration p99", "99th percentile of one collection cycle's duration.", units.Seconds, q(p99("perfagent_collection_duration_seconds", ", instance"), "{{instance}}")),
				timeSeries("Collections and failures", "Collection cycles per second, and those that could not compute every signal.", units.OpsPerSecond,
					q(`rate(perfagent_collection_duration_seconds_count{`+selfSel+`}[$__rate_interval])`, "cycles {{instance}}"),
					q(`rate(perfagent_collection_failures_total{`+selfSel+`}[$__rate_interval])`, "failures {{instance}}")),
				timeSeries("Source queries", "Queries to the metrics source per second, by outcome.", units.OpsPerSecond,
					q(`sum by (instance, outcome) (rate(perfagent_source_queries_total{`+selfSel+`}[$__rate_interval]))`, "{{outcome}} {{instance}}")),
				timeSeries("Source query duration p99", "99th percentile of one query to the metrics source, retries included.", units.Seconds, q(p99("perfagent_source_query_duration_seconds", ", instance"), "{{instance}}")),
				timeSeries("Rule evaluation duration p99", "99th percentile of one evaluation of the bottleneck rules.", units.Seconds, q(p99("perfagent_rule_evaluation_duration_seconds", ", instance"), "{{instance}}")),
				timeSeries("Rule evaluation failures", "Failed evaluations of bottleneck rules per second.", units.OpsPerSecond,
					q(`rate(perfagent_rule_evaluation_failures_total{`+selfSel+`}[$__rate_interval])`, "{{instance}}")),
				timeSeries("Instances seen", "Model servers in the last collection, by engine.", units.Short, q(`perfagent_instances{`+selfSel+`}`, "{{engine}} {{instance}}")),
				timeSeries("Settings probe failures", "HTTP probes of engine info endpoints that failed, per second.", units.OpsPerSecond,
					q(`rate(perfagent_settings_probe_failures_total{`+selfSel+`}[$__rate_interval])`, "{{instance}}")),
			}},
			{"Notifications and reloads", []cog.Builder[dashboard.Panel]{
				timeSeries("Alerts sent", "Alerts posted to each Alertmanager per second, and those that failed or were dropped.", units.OpsPerSecond,
					q(`sum by (alertmanager) (rate(perfagent_notifications_sent_total{`+selfSel+`}[$__rate_interval]))`, "sent {{alertmanager}}"),
					q(`sum by (alertmanager) (rate(perfagent_notifications_errors_total{`+selfSel+`}[$__rate_interval]))`, "errors {{alertmanager}}"),
					q(`sum by (alertmanager) (rate(perfagent_notifications_dropped_total{`+selfSel+`}[$__rate_interval]))`, "dropped {{alertmanager}}")),
				timeSeries("Notification queue", "Alerts waiting for each Alertmanager, against the queue's capacity.", units.Short,
					q(`perfagent_notifications_queue_length{`+selfSel+`}`, "{{alertmanager}}"),
					q(`max(perfagent_notifications_queue_capacity{`+selfSel+`})`, "capacity")),
				timeSeries("Configuration reloads", "Whether the last reload succeeded, and reloads that succeeded within each interval.", units.Short,
					q(`perfagent_config_last_reload_successful{`+selfSel+`}`, "last successful {{instance}}"),
					q(`changes(perfagent_config_last_reload_success_timestamp_seconds{`+selfSel+`}[$__rate_interval])`, "reloads {{instance}}")),
			}},
			{"API and resources", []cog.Builder[dashboard.Panel]{
				timeSeries("API latency p99", "99th percentile of the time to answer a request, by route.", units.Seconds, q(p99("perfagent_http_request_duration_seconds", ", handler"), "{{handler}}")),
				timeSeries("API requests", "Requests per second, by route and status code.", units.RequestsPerSecond,
					q(`sum by (handler, code) (rate(perfagent_http_request_duration_seconds_count{`+selfSel+`}[$__rate_interval]))`, "{{handler}} {{code}}")),
				timeSeries("Memory", "Resident memory of the process and Go heap in use.", units.BytesIEC,
					q(`process_resident_memory_bytes{`+selfSel+`}`, "resident {{instance}}"),
					q(`go_memstats_heap_inuse_bytes{`+selfSel+`}`, "heap in use {{instance}}")),
				timeSeries("CPU", "CPU time the process used per second (cores).", units.Short,
					q(`rate(process_cpu_seconds_total{`+selfSel+`}[$__rate_interval])`, "{{instance}}")),
			}},
		},
	}
}
