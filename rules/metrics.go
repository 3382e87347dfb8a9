package rules

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the rule evaluator's own metrics.
type Metrics struct {
	EvaluationFailures  prometheus.Counter
	EvaluationDuration  prometheus.Histogram
	BottlenecksDetected *prometheus.CounterVec
}

// NewMetrics registers the rule evaluator's metrics with reg; nil keeps
// them unregistered.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		EvaluationFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "perfagent_rule_evaluation_failures_total",
			Help: "Bottleneck rule evaluations that failed.",
		}),
		EvaluationDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "perfagent_rule_evaluation_duration_seconds",
			Help:    "Time one evaluation of every bottleneck rule took, evidence queries included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		BottlenecksDetected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "perfagent_bottlenecks_detected_total",
			Help: "Bottlenecks that turned firing, by rule (bottleneck), category, severity and model server.",
		}, []string{"bottleneck", "category", "severity", "instance", "engine", "model"}),
	}
}

// BottlenecksCollector exports the active bottlenecks as
// perfagent_bottleneck, one series of value 1 per rule, state and model
// server, with the server's identity labels (scrape with honor_labels).
type BottlenecksCollector struct {
	bottlenecks func() []Bottleneck
	desc        *prometheus.Desc
}

// NewBottlenecksCollector exports what bottlenecks returns at each scrape,
// typically Manager.Bottlenecks.
func NewBottlenecksCollector(bottlenecks func() []Bottleneck) *BottlenecksCollector {
	return &BottlenecksCollector{
		bottlenecks: bottlenecks,
		desc: prometheus.NewDesc(
			"perfagent_bottleneck",
			"Active bottleneck (value 1) by rule (bottleneck), category, severity, state (pending or firing) and model server.",
			[]string{"bottleneck", "category", "severity", "state", "instance", "engine", "model"}, nil,
		),
	}
}

// Describe implements prometheus.Collector.
func (c *BottlenecksCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. Alerts of one rule that differ
// only in labels other than the identity ones are exported once.
func (c *BottlenecksCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[7]string]bool{}
	for _, b := range c.bottlenecks() {
		key := [7]string{b.Rule, string(b.Category), string(b.Severity), string(b.State), b.Instance, b.Engine, b.Model}
		if seen[key] {
			continue
		}
		seen[key] = true
		m, err := prometheus.NewConstMetric(c.desc, prometheus.GaugeValue, 1, key[:]...)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, err)
			continue
		}
		ch <- m
	}
}
