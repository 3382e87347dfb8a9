package workflow

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/optiinfra/perfagent/collector"
)

// Verdict is the outcome of a comparison.
type Verdict string

// Verdicts. No data and query errors are inconclusive, never a pass.
const (
	VerdictPass         Verdict = "pass"
	VerdictFail         Verdict = "fail"
	VerdictInconclusive Verdict = "inconclusive"
)

// MetricSpec says how one signal is compared between canary and baseline.
type MetricSpec struct {
	Signal   string `json:"signal"`
	Quantile string `json:"quantile,omitempty"`
	// Bad is the direction that counts as a regression.
	Bad Direction `json:"bad"`
	// AllowedRatio bounds the canary/baseline mean ratio of a significant
	// regression that still passes: 1.10 lets latency rise 10 %; 0.95 lets
	// throughput fall 5 %. Used when AllowedDelta is zero.
	AllowedRatio float64 `json:"allowed_ratio,omitempty"`
	// CriticalRatio fails the metric outright when the mean ratio reaches it.
	CriticalRatio float64 `json:"critical_ratio,omitempty"`
	// AllowedDelta and CriticalDelta replace the ratios by an absolute
	// difference of means, for ratios near zero such as the error ratio.
	AllowedDelta  float64 `json:"allowed_delta,omitempty"`
	CriticalDelta float64 `json:"critical_delta,omitempty"`
	// Target marks a signal the change is meant to move.
	Target bool `json:"target,omitempty"`
}

// Name is the metric's display name, with its quantile.
func (m MetricSpec) Name() string {
	if m.Quantile == "" {
		return m.Signal
	}
	return fmt.Sprintf("%s{quantile=%q}", m.Signal, m.Quantile)
}

// Guardrails are compared in every validation, in addition to the change's
// target signals.
func Guardrails() []MetricSpec {
	return []MetricSpec{
		{Signal: "llm_request_error_ratio", Bad: DirectionIncrease, AllowedDelta: 0.005, CriticalDelta: 0.02},
		{Signal: "llm_time_to_first_token_seconds", Quantile: "0.95", Bad: DirectionIncrease, AllowedRatio: 1.10, CriticalRatio: 1.5},
		{Signal: "llm_inter_token_latency_seconds", Quantile: "0.95", Bad: DirectionIncrease, AllowedRatio: 1.10, CriticalRatio: 1.5},
		// A change that cuts what an instance can serve shows first as a
		// queue, while its finished-request rate (and so the traffic
		// check) drops and its latency quantiles may have too few requests
		// to say anything (heuristic bounds: two waiting requests, twenty).
		{Signal: "llm_requests_waiting", Bad: DirectionIncrease, AllowedDelta: 2, CriticalDelta: 20},
	}
}

// MetricsFor returns the metrics validating c: its targets, which must not
// get significantly worse at all, then the guardrails not already targeted.
func MetricsFor(c Change) []MetricSpec {
	var out []MetricSpec
	seen := map[string]bool{}
	for _, t := range c.Targets {
		m := MetricSpec{Signal: t.Signal, Quantile: t.Quantile, Target: true}
		if t.Expected == DirectionIncrease {
			m.Bad, m.AllowedRatio, m.CriticalRatio = DirectionDecrease, 1.0, 0.5
		} else {
			m.Bad, m.AllowedRatio, m.CriticalRatio = DirectionIncrease, 1.0, 1.5
		}
		if t.Signal == "llm_request_error_ratio" {
			m.AllowedRatio, m.CriticalRatio, m.AllowedDelta, m.CriticalDelta = 0, 0, 0.005, 0.02
		}
		if !seen[m.Name()] {
			seen[m.Name()] = true
			out = append(out, m)
		}
	}
	for _, g := range Guardrails() {
		if !seen[g.Name()] {
			seen[g.Name()] = true
			out = append(out, g)
		}
	}
	return out
}

// MetricResult is the judgment of one metric.
type MetricResult struct {
	Metric          string  `json:"metric"`
	Target          bool    `json:"target,omitempty"`
	Verdict         Verdict `json:"verdict"`
	Reason          string  `json:"reason"`
	QueryError      string  `json:"query_error,omitempty"`
	CanarySamples   int     `json:"canary_samples"`
	BaselineSamples int     `json:"baseline_samples"`
	CanaryMean      float64 `json:"canary_mean"`
	BaselineMean    float64 `json:"baseline_mean"`
	PValue          float64 `json:"p_value"`
	Shift           float64 `json:"shift"`
	Critical        bool    `json:"critical,omitempty"`
}

// StageResult is one validation of a stage or of the promoted pool.
type StageResult struct {
	Stage    string   `json:"stage"`
	Canary   []string `json:"canary"`
	Baseline []string `json:"baseline"`
	// PreChange is true when the baseline is the pre-change window of the
	// canary instances themselves.
	PreChange     bool           `json:"pre_change,omitempty"`
	Start         time.Time      `json:"start"`
	End           time.Time      `json:"end"`
	BaselineStart time.Time      `json:"baseline_start"`
	BaselineEnd   time.Time      `json:"baseline_end"`
	Verdict       Verdict        `json:"verdict"`
	Reason        string         `json:"reason"`
	Metrics       []MetricResult `json:"metrics"`
	Time          time.Time      `json:"time"`
}

// QueryFailed reports whether a query error kept a metric from being judged.
func (r StageResult) QueryFailed() bool {
	for _, m := range r.Metrics {
		if m.QueryError != "" {
			return true
		}
	}
	return false
}

// Comparison is what one validation compares.
type Comparison struct {
	Stage    string
	Engine   string
	Model    string
	Canary   []string
	Baseline []string
	// Start and End bound the canary window. BaselineStart and BaselineEnd
	// bound the baseline's; they equal Start and End unless PreChange.
	Start, End                 time.Time
	BaselineStart, BaselineEnd time.Time
	PreChange                  bool
	Metrics                    []MetricSpec
}

// ValidatorOptions configure a Validator.
type ValidatorOptions struct {
	Source collector.Source
	// Step is the range-query resolution (default 15s).
	Step time.Duration
	// MinSamples is the fewest values per side a metric is judged on
	// (default 20); fewer is no data.
	MinSamples int
	// Confidence of the test (default 0.95): a regression needs p < 1 - Confidence.
	Confidence float64
	// MaxTrafficSkew is the largest relative difference of per-instance
	// request rates between the sides (default 0.3) before the comparison
	// is inconclusive.
	MaxTrafficSkew float64
}

// Validator compares canary and baseline signals with range queries and a
// Mann-Whitney U test.
type Validator struct {
	opts ValidatorOptions
}

// NewValidator returns a Validator, filling unset options with defaults.
func NewValidator(o ValidatorOptions) *Validator {
	if o.Step <= 0 {
		o.Step = 15 * time.Second
	}
	if o.MinSamples <= 0 {
		o.MinSamples = 20
	}
	if o.Confidence <= 0 || o.Confidence >= 1 {
		o.Confidence = 0.95
	}
	if o.MaxTrafficSkew <= 0 {
		o.MaxTrafficSkew = 0.3
	}
	return &Validator{opts: o}
}

// Validate runs the comparison. Query errors are reported per metric and
// make the result inconclusive; they are not returned as an error.
func (v *Validator) Validate(ctx context.Context, c Comparison, now time.Time) StageResult {
	r := StageResult{
		Stage: c.Stage, Canary: c.Canary, Baseline: c.Baseline, PreChange: c.PreChange,
		Start: c.Start, End: c.End, BaselineStart: c.BaselineStart, BaselineEnd: c.BaselineEnd, Time: now,
	}
	for _, m := range c.Metrics {
		r.Metrics = append(r.Metrics, v.compare(ctx, c, m))
	}
	if !c.PreChange {
		r.Metrics = append(r.Metrics, v.traffic(ctx, c))
	}
	r.Verdict, r.Reason = VerdictPass, "no metric regressed"
	var fails, unsure []string
	for _, m := range r.Metrics {
		switch m.Verdict {
		case VerdictFail:
			fails = append(fails, m.Metric)
		case VerdictInconclusive:
			unsure = append(unsure, m.Metric)
		}
	}
	switch {
	case len(fails) > 0:
		r.Verdict, r.Reason = VerdictFail, "regressed: "+strings.Join(fails, ", ")
	case len(unsure) > 0:
		r.Verdict, r.Reason = VerdictInconclusive, "inconclusive: "+strings.Join(unsure, ", ")
	}
	return r
}

// selector returns signal restricted to the engine, model, instances and
// (for latency signals) quantile.
func selector(signal, engine, model string, instances []string, quantile string) string {
	quoted := make([]string, len(instances))
	for i, inst := range instances {
		quoted[i] = regexp.QuoteMeta(inst)
	}
	sort.Strings(quoted)
	sel := fmt.Sprintf("%s=%q,%s=%q,%s=~%q", collector.LabelEngine, engine, collector.LabelModel, model,
		collector.LabelInstance, strings.Join(quoted, "|"))
	if quantile != "" {
		sel += fmt.Sprintf(",%s=%q", collector.LabelQuantile, quantile)
	}
	return signal + "{" + sel + "}"
}

func (v *Validator) series(ctx context.Context, c Comparison, signal, quantile string, instances []string, start, end time.Time) ([]float64, error) {
	expr := "avg(" + selector(signal, c.Engine, c.Model, instances, quantile) + ")"
	m, err := v.opts.Source.QueryRange(ctx, expr, start, end, v.opts.Step)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	var out []float64
	for _, s := range m {
		for _, p := range s.Floats {
			if !math.IsNaN(p.F) && !math.IsInf(p.F, 0) {
				out = append(out, p.F)
			}
		}
	}
	return out, nil
}

func (v *Validator) compare(ctx context.Context, c Comparison, m MetricSpec) MetricResult {
	r := MetricResult{Metric: m.Name(), Target: m.Target, Verdict: VerdictInconclusive}
	canary, errC := v.series(ctx, c, m.Signal, m.Quantile, c.Canary, c.Start, c.End)
	baseline, errB := v.series(ctx, c, m.Signal, m.Quantile, c.Baseline, c.BaselineStart, c.BaselineEnd)
	if errC != nil || errB != nil {
		r.Reason = "query error"
		for _, e := range []error{errC, errB} {
			if e != nil {
				r.QueryError = e.Error()
			}
		}
		return r
	}
	r.CanarySamples, r.BaselineSamples = len(canary), len(baseline)
	if len(canary) < v.opts.MinSamples || len(baseline) < v.opts.MinSamples {
		r.Reason = fmt.Sprintf("no data: %d canary and %d baseline samples, %d needed", len(canary), len(baseline), v.opts.MinSamples)
		return r
	}
	return judge(r, canary, baseline, m, 1-v.opts.Confidence)
}

// judge classifies one metric from its samples.
func judge(r MetricResult, canary, baseline []float64, m MetricSpec, alpha float64) MetricResult {
	r.CanaryMean, r.BaselineMean = mean(canary), mean(baseline)
	mw := MannWhitney(canary, baseline)
	r.PValue, r.Shift = mw.P, mw.Shift
	worse := (m.Bad == DirectionIncrease && mw.Shift > 0) || (m.Bad == DirectionDecrease && mw.Shift < 0)
	significant := mw.P < alpha

	var exceeds bool
	if m.AllowedDelta > 0 {
		d := r.CanaryMean - r.BaselineMean
		if m.Bad == DirectionDecrease {
			d = -d
		}
		exceeds = d > m.AllowedDelta
		r.Critical = m.CriticalDelta > 0 && d >= m.CriticalDelta
	} else if r.BaselineMean == 0 {
		// The mean ratio is undefined; the test alone decides.
		exceeds = true
	} else {
		ratio := r.CanaryMean / r.BaselineMean
		if m.Bad == DirectionIncrease {
			exceeds = ratio > m.AllowedRatio
			r.Critical = m.CriticalRatio > 0 && ratio >= m.CriticalRatio
		} else {
			exceeds = ratio < m.AllowedRatio
			r.Critical = m.CriticalRatio > 0 && ratio <= m.CriticalRatio
		}
	}
	switch {
	case r.Critical:
		r.Verdict, r.Reason = VerdictFail, "critical regression"
	case worse && significant && exceeds:
		r.Verdict, r.Reason = VerdictFail, "significant regression beyond the allowed effect"
	case worse && significant:
		r.Verdict, r.Reason = VerdictPass, "significant change within the allowed effect"
	case significant:
		r.Verdict, r.Reason = VerdictPass, "significant improvement"
	default:
		r.Verdict, r.Reason = VerdictPass, "no significant difference"
	}
	return r
}

// traffic checks that both sides served a similar request rate per
// instance; load-aware routers steering away from a slow canary would
// otherwise hide a regression.
func (v *Validator) traffic(ctx context.Context, c Comparison) MetricResult {
	const signal = "llm_requests_per_second"
	r := MetricResult{Metric: "traffic_share(" + signal + ")", Verdict: VerdictInconclusive}
	canary, errC := v.series(ctx, c, signal, "", c.Canary, c.Start, c.End)
	baseline, errB := v.series(ctx, c, signal, "", c.Baseline, c.BaselineStart, c.BaselineEnd)
	if errC != nil || errB != nil {
		r.Reason = "query error"
		for _, e := range []error{errC, errB} {
			if e != nil {
				r.QueryError = e.Error()
			}
		}
		return r
	}
	r.CanarySamples, r.BaselineSamples = len(canary), len(baseline)
	if len(canary) < v.opts.MinSamples || len(baseline) < v.opts.MinSamples {
		r.Reason = "no data"
		return r
	}
	r.CanaryMean, r.BaselineMean = mean(canary), mean(baseline)
	if r.BaselineMean <= 0 || math.Abs(r.CanaryMean/r.BaselineMean-1) > v.opts.MaxTrafficSkew {
		r.Reason = fmt.Sprintf("request rate per instance differs by more than %.0f %%", 100*v.opts.MaxTrafficSkew)
		return r
	}
	r.Verdict, r.Reason = VerdictPass, "similar request rate per instance"
	return r
}
