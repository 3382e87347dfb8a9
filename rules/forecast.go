package rules

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/signals"
)

// SaturationETASeries is the series the built-in forecasts record
// (builtin:forecasts.yml, docs/forecasts.md): the seconds until a
// resource of an instance, or of a model pool (no instance label),
// saturates at its current growth; absent when no saturation is ahead.
const SaturationETASeries = "perfagent_saturation_eta_seconds"

// LabelResource names the resource of a forecast: ResourceKVCache or
// ResourceQueue.
const LabelResource = "resource"

// Resources that are forecast.
const (
	ResourceKVCache = "kv_cache"
	ResourceQueue   = "queue"
)

// SaturationETA is one forecast.
type SaturationETA struct {
	// Instance is empty for a model pool (every replica of Engine and
	// Model).
	Instance string `json:"instance,omitempty"`
	Engine   string `json:"engine"`
	Model    string `json:"model"`
	// Resource is kv_cache or queue.
	Resource string `json:"resource"`
	// Seconds is the time from the evaluation until the resource's trend
	// reaches the level of its bottleneck rule.
	Seconds float64 `json:"seconds"`
}

// Querier evaluates an instant query, as signalstore.Store does.
type Querier interface {
	Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error)
}

// SaturationETAs returns the forecasts recorded at ts, pools after
// instances, each by instance (or engine and model), then resource.
func SaturationETAs(ctx context.Context, q Querier, ts time.Time) ([]SaturationETA, error) {
	v, err := q.Query(ctx, SaturationETASeries, ts)
	if err != nil {
		return nil, fmt.Errorf("reading the saturation forecasts: %w", err)
	}
	out := make([]SaturationETA, 0, len(v))
	for _, s := range v {
		out = append(out, SaturationETA{
			Instance: s.Metric.Get(signals.LabelInstance),
			Engine:   s.Metric.Get(signals.LabelEngine),
			Model:    s.Metric.Get(signals.LabelModel),
			Resource: s.Metric.Get(LabelResource),
			Seconds:  s.F,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Instance == "") != (b.Instance == "") {
			return b.Instance == ""
		}
		if a.Instance != b.Instance {
			return a.Instance < b.Instance
		}
		if a.Engine != b.Engine {
			return a.Engine < b.Engine
		}
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		return a.Resource < b.Resource
	})
	return out, nil
}

// SaturationETACollector exports the forecasts recorded at the last
// evaluation as perfagent_saturation_eta_seconds, with the identity labels
// of the model server or pool (scrape with honor_labels), so a Prometheus
// scraping the agent has them as the agent's TSDB does.
type SaturationETACollector struct {
	q    Querier
	at   func() (time.Time, bool)
	desc *prometheus.Desc
}

// NewSaturationETACollector exports the forecasts q holds at the time at
// returns (the last evaluation; false while there is none).
func NewSaturationETACollector(q Querier, at func() (time.Time, bool)) *SaturationETACollector {
	return &SaturationETACollector{
		q:  q,
		at: at,
		desc: prometheus.NewDesc(SaturationETASeries,
			"Seconds until the resource (kv_cache, queue) of an instance, or of a model pool without an instance label, saturates at its current growth; absent when no saturation is ahead (docs/forecasts.md).",
			[]string{signals.LabelInstance, signals.LabelEngine, signals.LabelModel, LabelResource}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *SaturationETACollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *SaturationETACollector) Collect(ch chan<- prometheus.Metric) {
	ts, ok := c.at()
	if !ok {
		return
	}
	etas, err := SaturationETAs(context.Background(), c.q, ts)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, e := range etas {
		m, err := prometheus.NewConstMetric(c.desc, prometheus.GaugeValue, e.Seconds, e.Instance, e.Engine, e.Model, e.Resource)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, err)
			continue
		}
		ch <- m
	}
}
