package scraper

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	targets  prometheus.Gauge
	scrapes  *prometheus.CounterVec
	duration prometheus.Histogram
	rejected prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		targets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "perfagent_scrape_targets",
			Help: "Model servers the embedded source scrapes.",
		}),
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "perfagent_scrapes_total",
			Help: "Scrapes of model servers by outcome (success, error).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "perfagent_scrape_duration_seconds",
			Help:    "How long a scrape of a model server took, from its request to its samples written.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "perfagent_scrape_samples_rejected_total",
			Help: "Scraped samples the store refused: out of order, duplicate or too old.",
		}),
	}
	m.scrapes.WithLabelValues("success")
	m.scrapes.WithLabelValues("error")
	for _, c := range []prometheus.Collector{m.targets, m.scrapes, m.duration, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the scrape metrics: %w", err)
		}
	}
	return m, nil
}
