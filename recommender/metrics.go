package recommender

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	infoDesc = prometheus.NewDesc(
		"perfagent_recommendation_info",
		"Current recommendation of perfagent for a model server (value 1): the flag, its current and proposed values; for replica changes flag is \"replicas\".",
		[]string{"id", "instance", "engine", "model", "flag", "current", "proposed"}, nil,
	)
	confidenceDesc = prometheus.NewDesc(
		"perfagent_recommendation_confidence",
		"Confidence of a current recommendation, from 0 to 1 (docs/recommendations.md).",
		[]string{"id", "instance", "engine", "model"}, nil,
	)
	effectDesc = prometheus.NewDesc(
		"perfagent_recommendation_expected_value",
		"Value a signal is expected to take once a current recommendation is applied, where a formula gives one (docs/recommendations.md); the signal's unit.",
		[]string{"id", "instance", "engine", "model", "signal", "quantile"}, nil,
	)
)

// RecommendationsCollector exports the latest recommendations.
type RecommendationsCollector struct {
	latest func() []Recommendation
}

// NewRecommendationsCollector exports what latest returns at each scrape.
func NewRecommendationsCollector(latest func() []Recommendation) *RecommendationsCollector {
	return &RecommendationsCollector{latest: latest}
}

// Describe implements prometheus.Collector.
func (c *RecommendationsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- infoDesc
	ch <- confidenceDesc
	ch <- effectDesc
}

// Collect implements prometheus.Collector.
func (c *RecommendationsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.latest() {
		flag, cur, prop := r.Action.Flag, r.Action.Current, r.Action.Proposed
		if r.Action.Kind == KindReplicas {
			flag, cur, prop = "replicas", strconv.Itoa(r.Action.From), strconv.Itoa(r.Action.To)
		}
		send(ch, infoDesc, 1, r.ID, r.Instance, r.Engine, r.Model, flag, cur, prop)
		send(ch, confidenceDesc, r.Confidence, r.ID, r.Instance, r.Engine, r.Model)
		for _, e := range r.Effects {
			if e.Estimate != nil {
				// Untyped, as the latency signals are: the quantile label is
				// reserved for summaries.
				sendTyped(ch, effectDesc, prometheus.UntypedValue, *e.Estimate, r.ID, r.Instance, r.Engine, r.Model, e.Signal, e.Quantile)
			}
		}
	}
}

// send reports label values that are not valid UTF-8 as an invalid
// metric instead of panicking.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	sendTyped(ch, d, prometheus.GaugeValue, v, labels...)
}

func sendTyped(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
