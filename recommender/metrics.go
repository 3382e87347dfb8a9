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
	}
}

// send reports label values that are not valid UTF-8 as an invalid
// metric instead of panicking.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
