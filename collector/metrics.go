package collector

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/optiinfra/perfagent/signals"
)

// Metrics are the collector's own health metrics. They carry no instance
// label: they describe the agent, not the model servers.
type Metrics struct {
	SourceUp           prometheus.Gauge
	SourceQueries      *prometheus.CounterVec
	SourceQueryLatency prometheus.Histogram
	CollectionDuration prometheus.Histogram
	CollectionFailures prometheus.Counter
	Instances          *prometheus.GaugeVec
	ProbeFailures      prometheus.Counter
}

// Outcomes of a source query, the values of the outcome label.
const (
	OutcomeSuccess = "success"
	OutcomeRetry   = "retry"
	OutcomeError   = "error"
)

// NewMetrics registers the collector's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		SourceUp: f.NewGauge(prometheus.GaugeOpts{
			Name: "perfagent_source_up",
			Help: "Whether the last query to the metrics source succeeded (1) or failed (0); in embedded mode also 0 while no model server's last scrape succeeded.",
		}),
		SourceQueries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "perfagent_source_queries_total",
			Help: "Queries sent to the metrics source, by outcome (success, retry, error).",
		}, []string{"outcome"}),
		SourceQueryLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "perfagent_source_query_duration_seconds",
			Help:    "Time one query to the metrics source took, retries included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		CollectionDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "perfagent_collection_duration_seconds",
			Help:    "Time one collection cycle took; its count is the number of cycles.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		CollectionFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "perfagent_collection_failures_total",
			Help: "Collection cycles that could not compute every signal.",
		}),
		Instances: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "perfagent_instances",
			Help: "Model-server instances seen in the last collection, by engine.",
		}, []string{"engine"}),
		ProbeFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "perfagent_settings_probe_failures_total",
			Help: "HTTP probes of engine info endpoints that failed.",
		}),
	}
	for _, o := range []string{OutcomeSuccess, OutcomeRetry, OutcomeError} {
		m.SourceQueries.WithLabelValues(o)
	}
	for _, e := range []string{signals.EngineVLLM, signals.EngineSGLang, signals.EngineTGI, signals.EngineTRTLLM, signals.EngineLlamaCpp} {
		m.Instances.WithLabelValues(e)
	}
	return m
}
