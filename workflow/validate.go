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
	"github.com/optiinfra/perfagent/signals"
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
	// PreChange is the difference between canary and peer baseline in
	// the window before anything changed, when peers were considered.
	PreChange *Gap `json:"pre_change,omitempty"`
}

// Gap is how canary and baseline differed before the change.
type Gap struct {
	CanaryMean   float64 `json:"canary_mean"`
	BaselineMean float64 `json:"baseline_mean"`
	PValue       float64 `json:"p_value"`
	Comparable   bool    `json:"comparable"`
	Reason       string  `json:"reason"`
}

// StageResult is one validation of a stage or of the promoted pool.
type StageResult struct {
	Stage  string   `json:"stage"`
	Canary []string `json:"canary"`
	// Baseline are the instances the canaries were compared with: peers,
	// or the canaries themselves before the change (PreChange).
	Baseline []string `json:"baseline"`
	// Peers are the unchanged instances of the same kind considered as
	// the baseline; NotComparable says why they were not used.
	Peers         []string `json:"peers,omitempty"`
	NotComparable string   `json:"not_comparable,omitempty"`
	// PreChange is true when the baseline is the pre-change window of the
	// canary instances themselves.
	PreChange     bool      `json:"pre_change,omitempty"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	BaselineStart time.Time `json:"baseline_start"`
	BaselineEnd   time.Time `json:"baseline_end"`
	// Restarted are canaries whose counters reset in the window: they
	// restarted on their own, and the window does not show the change.
	Restarted []string       `json:"restarted,omitempty"`
	Verdict   Verdict        `json:"verdict"`
	Reason    string         `json:"reason"`
	Basis     string         `json:"basis"`
	Metrics   []MetricResult `json:"metrics"`
	Time      time.Time      `json:"time"`
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
	Stage  string
	Engine string
	Model  string
	Canary []string
	// Peers are unchanged instances of the same kind. They are the
	// baseline when the window before the change shows them comparable
	// with the canaries; otherwise, or without peers, the canaries are
	// compared with their own window before the change.
	Peers []string
	// Start and End bound the analysis window; PreStart and PreEnd the
	// window before any instance changed.
	Start, End       time.Time
	PreStart, PreEnd time.Time
	// ChangedAt is when the newest canary was changed: counter resets
	// seen later than ChangedAt plus the restart look-back are restarts
	// the workflow did not cause.
	ChangedAt time.Time
	Metrics   []MetricSpec
}

// ValidatorOptions configure a Validator.
type ValidatorOptions struct {
	Source collector.Source
	// Step is the range-query resolution (default 15s).
	Step time.Duration
	// MinSamples is the fewest values per side a metric is judged on
	// (default DefaultMinSamples); fewer is no data.
	MinSamples int
	// Confidence of the test (default 0.95): a regression needs p < 1 - Confidence.
	Confidence float64
	// MaxTrafficSkew is the largest relative difference of per-instance
	// request rates between the sides (default 0.3) before the comparison
	// is inconclusive.
	MaxTrafficSkew float64
	// MaxPreChangeGap is the largest relative difference of a metric's
	// means between canaries and peers before the change (default 0.1)
	// for the peers to be a comparable baseline.
	MaxPreChangeGap float64
	// RestartLookback is how far back one sample of llm_engine_restarts
	// looks (the collector's rate window; default 1m).
	RestartLookback time.Duration
}

// DefaultMinSamples is the fewest values per side a metric is judged on
// unless ValidatorOptions say otherwise: an analysis window shorter than
// this many steps can never be judged.
const DefaultMinSamples = 20

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
		o.MinSamples = DefaultMinSamples
	}
	if o.Confidence <= 0 || o.Confidence >= 1 {
		o.Confidence = 0.95
	}
	if o.MaxTrafficSkew <= 0 {
		o.MaxTrafficSkew = 0.3
	}
	if o.MaxPreChangeGap <= 0 {
		o.MaxPreChangeGap = 0.1
	}
	if o.RestartLookback <= 0 {
		o.RestartLookback = time.Minute
	}
	return &Validator{opts: o}
}

// side is one half of a comparison: instances over a time range.
type side struct {
	instances  []string
	start, end time.Time
}

// Validate runs the comparison. Query errors are reported per metric and
// make the result inconclusive; they are not returned as an error.
func (v *Validator) Validate(ctx context.Context, c Comparison, now time.Time) StageResult {
	r := StageResult{Stage: c.Stage, Canary: c.Canary, Peers: c.Peers, Start: c.Start, End: c.End, Time: now}
	canary := side{c.Canary, c.Start, c.End}
	baseline := side{c.Canary, c.PreStart, c.PreEnd}
	r.PreChange = true
	var gaps []*Gap
	if len(c.Peers) > 0 {
		var why []string
		for _, m := range append(c.Metrics, trafficSpec(v.opts.MaxTrafficSkew)) {
			g, err := v.gap(ctx, c, m)
			if err != nil {
				r.Metrics = append(r.Metrics, MetricResult{Metric: m.Name(), Target: m.Target, Verdict: VerdictInconclusive, Reason: "query error", QueryError: err.Error()})
				continue
			}
			gaps = append(gaps, g)
			if !g.Comparable {
				why = append(why, m.Name()+": "+g.Reason)
			}
		}
		if len(r.Metrics) > 0 {
			r.Verdict, r.Reason = VerdictInconclusive, "inconclusive: queries failed"
			r.Basis = "the pre-change comparison with the peers could not be queried"
			return r
		}
		if len(why) == 0 {
			baseline, r.PreChange = side{c.Peers, c.Start, c.End}, false
			r.Basis = fmt.Sprintf("compared with unchanged peers %s over the same window; before the change they matched the canaries on every metric", strings.Join(c.Peers, ", "))
		} else {
			r.NotComparable = strings.Join(why, "; ")
			r.Basis = fmt.Sprintf("peers %s were not shown to match the canaries before the change (%s), so they are not comparable; compared with the canaries' own window before the change instead", strings.Join(c.Peers, ", "), r.NotComparable)
		}
	} else {
		r.Basis = "no unchanged peer of the same kind; compared with the canaries' own window before the change"
	}
	r.Baseline, r.BaselineStart, r.BaselineEnd = baseline.instances, baseline.start, baseline.end
	for i, m := range c.Metrics {
		res := v.compare(ctx, c, m, canary, baseline)
		if gaps != nil {
			res.PreChange = gaps[i]
		}
		r.Metrics = append(r.Metrics, res)
	}
	r.Metrics = append(r.Metrics, v.traffic(ctx, c, canary, baseline))
	restarted, err := v.restarts(ctx, c)
	if err != nil {
		r.Metrics = append(r.Metrics, MetricResult{Metric: "restarts(llm_engine_restarts)", Verdict: VerdictInconclusive, Reason: "query error", QueryError: err.Error()})
	}
	r.Restarted = restarted
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
	case len(restarted) > 0:
		r.Verdict, r.Reason = VerdictInconclusive, "inconclusive: "+strings.Join(restarted, ", ")+" restarted during the window (its counters reset), not by this workflow"
	case len(fails) > 0:
		r.Verdict, r.Reason = VerdictFail, "regressed: "+strings.Join(fails, ", ")
	case len(unsure) > 0:
		r.Verdict, r.Reason = VerdictInconclusive, "inconclusive: "+strings.Join(unsure, ", ")
	}
	return r
}

// trafficSpec compares request rates per instance, for comparability.
func trafficSpec(skew float64) MetricSpec {
	return MetricSpec{Signal: "llm_requests_per_second", AllowedRatio: 1 + skew}
}

// gap compares canaries and peers over the window before the change.
func (v *Validator) gap(ctx context.Context, c Comparison, m MetricSpec) (*Gap, error) {
	canary, err := v.series(ctx, c, m.Signal, m.Quantile, c.Canary, c.PreStart, c.PreEnd)
	if err != nil {
		return nil, err
	}
	peers, err := v.series(ctx, c, m.Signal, m.Quantile, c.Peers, c.PreStart, c.PreEnd)
	if err != nil {
		return nil, err
	}
	if len(canary) < v.opts.MinSamples || len(peers) < v.opts.MinSamples {
		return &Gap{Reason: fmt.Sprintf("too little history before the change (%d canary and %d peer samples, %d needed)", len(canary), len(peers), v.opts.MinSamples)}, nil
	}
	g := &Gap{CanaryMean: mean(canary), BaselineMean: mean(peers)}
	g.PValue = MannWhitney(canary, peers).P
	diff := math.Abs(g.CanaryMean - g.BaselineMean)
	var beyond bool
	switch {
	case m.AllowedDelta > 0:
		beyond = diff > m.AllowedDelta
	case m.Signal == "llm_requests_per_second":
		beyond = g.BaselineMean <= 0 || diff/g.BaselineMean > v.opts.MaxTrafficSkew
	default:
		beyond = diff > v.opts.MaxPreChangeGap*math.Max(math.Abs(g.BaselineMean), math.Abs(g.CanaryMean))
	}
	if beyond && g.PValue < 1-v.opts.Confidence {
		g.Reason = fmt.Sprintf("canary mean %.4g vs peers %.4g (p=%.3g)", g.CanaryMean, g.BaselineMean, g.PValue)
		return g, nil
	}
	g.Comparable, g.Reason = true, "no difference beyond the tolerance"
	return g, nil
}

// restarts returns the canaries whose request counters reset after their
// own change could have caused it.
func (v *Validator) restarts(ctx context.Context, c Comparison) ([]string, error) {
	from := c.Start
	if t := c.ChangedAt.Add(v.opts.RestartLookback); t.After(from) {
		from = t
	}
	if !from.Before(c.End) {
		return nil, nil
	}
	expr := "max by (" + signals.LabelInstance + ") (" + selector("llm_engine_restarts", c.Engine, c.Model, c.Canary, "") + ") > 0"
	m, err := v.opts.Source.QueryRange(ctx, expr, from, c.End, v.opts.Step)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	var out []string
	for _, s := range m {
		if inst := s.Metric.Get(signals.LabelInstance); inst != "" && len(s.Floats) > 0 {
			out = append(out, inst)
		}
	}
	sort.Strings(out)
	return out, nil
}

// selector returns signal restricted to the engine, model, instances and
// (for latency signals) quantile.
func selector(signal, engine, model string, instances []string, quantile string) string {
	quoted := make([]string, len(instances))
	for i, inst := range instances {
		quoted[i] = regexp.QuoteMeta(inst)
	}
	sort.Strings(quoted)
	sel := fmt.Sprintf("%s=%q,%s=%q,%s=~%q", signals.LabelEngine, engine, signals.LabelModel, model,
		signals.LabelInstance, strings.Join(quoted, "|"))
	if quantile != "" {
		sel += fmt.Sprintf(",%s=%q", signals.LabelQuantile, quantile)
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

func (v *Validator) compare(ctx context.Context, c Comparison, m MetricSpec, canarySide, baseSide side) MetricResult {
	r := MetricResult{Metric: m.Name(), Target: m.Target, Verdict: VerdictInconclusive}
	canary, baseline, err := v.sides(ctx, c, m.Signal, m.Quantile, canarySide, baseSide)
	if err != nil {
		r.Reason, r.QueryError = "query error", err.Error()
		return r
	}
	r.CanarySamples, r.BaselineSamples = len(canary), len(baseline)
	if len(canary) < v.opts.MinSamples || len(baseline) < v.opts.MinSamples {
		r.Reason = fmt.Sprintf("no data: %d canary and %d baseline samples, %d needed", len(canary), len(baseline), v.opts.MinSamples)
		return r
	}
	return judge(r, canary, baseline, m, 1-v.opts.Confidence)
}

// sides reads one signal for both sides of a comparison.
func (v *Validator) sides(ctx context.Context, c Comparison, signal, quantile string, a, b side) (av, bv []float64, err error) {
	av, err = v.series(ctx, c, signal, quantile, a.instances, a.start, a.end)
	if err != nil {
		return nil, nil, err
	}
	bv, err = v.series(ctx, c, signal, quantile, b.instances, b.start, b.end)
	return av, bv, err
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

// traffic checks that both sides were offered a similar request rate per
// instance; load-aware routers steering away from a slow canary, or a
// workload that changed since the pre-change window, would otherwise hide
// or fake an effect. The offered rate is the finished-request rate plus
// the growth of the requests in the system (running and waiting) over the
// window: a canary whose raised capacity drains its queue finishes more
// requests than arrive, and that is the change working, not more traffic.
func (v *Validator) traffic(ctx context.Context, c Comparison, canarySide, baseSide side) MetricResult {
	const signal = "llm_requests_per_second"
	r := MetricResult{Metric: "traffic_share(" + signal + ")", Verdict: VerdictInconclusive}
	canary, baseline, err := v.sides(ctx, c, signal, "", canarySide, baseSide)
	if err != nil {
		r.Reason, r.QueryError = "query error", err.Error()
		return r
	}
	r.CanarySamples, r.BaselineSamples = len(canary), len(baseline)
	if len(canary) < v.opts.MinSamples || len(baseline) < v.opts.MinSamples {
		r.Reason = "no data"
		return r
	}
	canaryGrowth, err := v.inSystemGrowth(ctx, c, canarySide)
	if err != nil {
		r.Reason, r.QueryError = "query error", err.Error()
		return r
	}
	baseGrowth, err := v.inSystemGrowth(ctx, c, baseSide)
	if err != nil {
		r.Reason, r.QueryError = "query error", err.Error()
		return r
	}
	r.CanaryMean, r.BaselineMean = mean(canary)+canaryGrowth, mean(baseline)+baseGrowth
	if r.BaselineMean <= 0 || math.Abs(r.CanaryMean/r.BaselineMean-1) > v.opts.MaxTrafficSkew {
		r.Reason = fmt.Sprintf("offered request rate per instance (finished, plus the growth of running and waiting requests) differs by more than %.0f %%", 100*v.opts.MaxTrafficSkew)
		return r
	}
	r.Verdict, r.Reason = VerdictPass, "similar offered request rate per instance"
	return r
}

// inSystemGrowth is how fast the requests in the system (running plus
// waiting, per instance) grew over a side's window, in requests per
// second; 0 where the engine exposes neither.
func (v *Validator) inSystemGrowth(ctx context.Context, c Comparison, s side) (float64, error) {
	seconds := s.end.Sub(s.start).Seconds()
	if seconds <= 0 {
		return 0, nil
	}
	var growth float64
	for _, signal := range []string{"llm_requests_running", "llm_requests_waiting"} {
		vals, err := v.series(ctx, c, signal, "", s.instances, s.start, s.end)
		if err != nil {
			return 0, err
		}
		if len(vals) >= 2 {
			growth += (vals[len(vals)-1] - vals[0]) / seconds
		}
	}
	return growth, nil
}
