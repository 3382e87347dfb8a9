package rules

import (
	"fmt"
	"time"

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

// AppendSLOTargets appends, at ts (milliseconds), one sample per set field
// of every target, and the default target (model label absent): the
// configured one where given, field by field, else DefaultTTFTP95,
// DefaultITLP95 and DefaultErrorRatio. Call it every collection cycle so
// the series never go stale; a target removed from the configuration
// disappears after the lookback delta (5 minutes).
func AppendSLOTargets(app storage.Appender, ts int64, targets []config.SLOTarget) error {
	if err := config.ValidateSLOTargets(targets); err != nil {
		return err
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
	for _, t := range all {
		for _, s := range []struct {
			name string
			v    float64
		}{
			{SLOTTFTP95Series, time.Duration(t.TTFTP95).Seconds()},
			{SLOITLP95Series, time.Duration(t.ITLP95).Seconds()},
			{SLOErrorRatioSeries, t.ErrorRatio},
		} {
			if s.v <= 0 {
				continue
			}
			lset := labels.FromStrings(model.MetricNameLabel, s.name)
			if t.Model != "" {
				lset = labels.FromStrings(model.MetricNameLabel, s.name, signals.LabelModel, t.Model)
			}
			if _, err := app.Append(0, lset, ts, s.v); err != nil {
				return fmt.Errorf("appending SLO target %s: %w", lset, err)
			}
		}
	}
	return nil
}
