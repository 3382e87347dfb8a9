package rules

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

// Series that carry per-model SLO targets in the local TSDB, so rules
// compare signals with them in PromQL. Each has a model label; the series
// without one (model="" in PromQL) is the default for models that have no
// target of their own.
const (
	SLOTTFTP95Series    = "perfagent_slo_ttft_p95_seconds"
	SLOITLP95Series     = "perfagent_slo_itl_p95_seconds"
	SLOErrorRatioSeries = "perfagent_slo_error_ratio"
)

// SLOSeries lists the SLO target series names.
func SLOSeries() []string {
	return []string{SLOTTFTP95Series, SLOITLP95Series, SLOErrorRatioSeries}
}

// Default SLO targets, used when the configuration gives no default
// target: NVIDIA Dynamo's SLA planner defaults (TTFT 500 ms, ITL 50 ms) and
// the 5 % error-rate alert of llm-d PR #553 (docs/rules.md).
const (
	DefaultTTFTP95    = 500 * time.Millisecond
	DefaultITLP95     = 50 * time.Millisecond
	DefaultErrorRatio = 0.05
)

// sloTarget is one target series: a name, its model ("" for the default
// target) and its value.
type sloTarget struct {
	name, model string
	value       float64
}

// resolveSLOTargets lists one series per set field of every target, and
// the default target: the configured one where given, field by field, else
// DefaultTTFTP95, DefaultITLP95 and DefaultErrorRatio.
func resolveSLOTargets(targets []config.SLOTarget) ([]sloTarget, error) {
	if err := config.ValidateSLOTargets(targets); err != nil {
		return nil, err
	}
	def := config.SLOTarget{TTFTP95: config.Duration(DefaultTTFTP95), ITLP95: config.Duration(DefaultITLP95), ErrorRatio: DefaultErrorRatio}
	all := make([]config.SLOTarget, 0, len(targets)+1)
	for _, t := range targets {
		if t.Model != "" {
			all = append(all, t)
			continue
		}
		if t.TTFTP95 > 0 {
			def.TTFTP95 = t.TTFTP95
		}
		if t.ITLP95 > 0 {
			def.ITLP95 = t.ITLP95
		}
		if t.ErrorRatio > 0 {
			def.ErrorRatio = t.ErrorRatio
		}
	}
	all = append(all, def)
	var out []sloTarget
	for _, t := range all {
		for _, s := range []sloTarget{
			{SLOTTFTP95Series, t.Model, time.Duration(t.TTFTP95).Seconds()},
			{SLOITLP95Series, t.Model, time.Duration(t.ITLP95).Seconds()},
			{SLOErrorRatioSeries, t.Model, t.ErrorRatio},
		} {
			if s.value > 0 {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// SLOTargetsFor returns the targets in force for a model: its own where
// set, else the default's, field by field, as the rules compare them.
func SLOTargetsFor(targets []config.SLOTarget, model string) (ttftP95, itlP95 time.Duration, errorRatio float64, err error) {
	all, err := resolveSLOTargets(targets)
	if err != nil {
		return 0, 0, 0, err
	}
	pick := func(series string) float64 {
		var def float64
		for _, t := range all {
			if t.name != series {
				continue
			}
			if t.model == model && model != "" {
				return t.value
			}
			if t.model == "" {
				def = t.value
			}
		}
		return def
	}
	sec := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	return sec(pick(SLOTTFTP95Series)), sec(pick(SLOITLP95Series)), pick(SLOErrorRatioSeries), nil
}

// AppendSLOTargets appends, at ts (milliseconds), the series of
// resolveSLOTargets; the default target's have no model label. Call it
// every collection cycle so the series never go stale; a target removed
// from the configuration disappears after the lookback delta (5 minutes).
func AppendSLOTargets(app storage.Appender, ts int64, targets []config.SLOTarget) error {
	all, err := resolveSLOTargets(targets)
	if err != nil {
		return err
	}
	for _, t := range all {
		lset := labels.FromStrings(model.MetricNameLabel, t.name)
		if t.model != "" {
			lset = labels.FromStrings(model.MetricNameLabel, t.name, signals.LabelModel, t.model)
		}
		if _, err := app.Append(0, lset, ts, t.value); err != nil {
			return fmt.Errorf("appending SLO target %s: %w", lset, err)
		}
	}
	return nil
}

// SLOTargetsCollector exports the SLO targets in force as the same series
// the rules read, so dashboards can draw them: the default target's model
// label is empty.
type SLOTargetsCollector struct {
	targets func() []config.SLOTarget
	descs   map[string]*prometheus.Desc
}

// NewSLOTargetsCollector exports what targets returns at each scrape.
func NewSLOTargetsCollector(targets func() []config.SLOTarget) *SLOTargetsCollector {
	help := map[string]string{
		SLOTTFTP95Series:    "SLO target of the 95th percentile of time to first token, in seconds, by model (empty: the default).",
		SLOITLP95Series:     "SLO target of the 95th percentile of inter-token latency, in seconds, by model (empty: the default).",
		SLOErrorRatioSeries: "SLO target of the share of failed requests, by model (empty: the default).",
	}
	c := &SLOTargetsCollector{targets: targets, descs: map[string]*prometheus.Desc{}}
	for name, h := range help {
		c.descs[name] = prometheus.NewDesc(name, h, []string{signals.LabelModel}, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *SLOTargetsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *SLOTargetsCollector) Collect(ch chan<- prometheus.Metric) {
	all, err := resolveSLOTargets(c.targets())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.descs[SLOTTFTP95Series], err)
		return
	}
	for _, t := range all {
		ch <- prometheus.MustNewConstMetric(c.descs[t.name], prometheus.GaugeValue, t.value, t.model)
	}
}
