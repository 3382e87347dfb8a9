package main

import (
	"slices"
	"time"
)

// warnHorizon is how far ahead the forecast rules warn
// (LLMKVCacheSaturationAhead: a full KV cache within 30 minutes). A
// warning that its bottleneck does not follow, on its instance, while it
// lasts or within this horizon after it ends is a false alarm.
const warnHorizon = 30 * time.Minute

// Warning is one episode of a forecast rule on one instance.
type Warning struct {
	Bottleneck string        `json:"bottleneck"`
	Instance   string        `json:"instance"`
	From       time.Duration `json:"from"`
	To         time.Duration `json:"to"`
	// Confirmed tells whether a rule detected the bottleneck on the
	// instance during the warning or within warnHorizon after it.
	Confirmed bool `json:"confirmed"`
}

// Lead is how far ahead of its detection a detected truth interval of a
// forecast bottleneck was announced.
type Lead struct {
	Bottleneck string `json:"bottleneck"`
	Instance   string `json:"instance"`
	// DetectedAt is the first evaluation at which a detecting rule fired
	// for the truth interval.
	DetectedAt time.Duration `json:"detected_at"`
	// Warned tells whether a warning was active in the warnHorizon before
	// DetectedAt; Lead is DetectedAt less the warning's start, zero when
	// none was.
	Warned bool          `json:"warned"`
	Lead   time.Duration `json:"lead"`
}

// scoreForecasts adds to res the forecast rules' warnings and the lead
// they gave on every detected truth of a bottleneck they forecast.
func (r *replay) scoreForecasts(res *ScenarioResult) {
	forecast := map[string]bool{}
	for _, rl := range r.pipe.Rules() {
		if rl.Forecast != "" {
			forecast[rl.Bottleneck] = true
		}
	}
	res.Warnings = scoreWarnings(res.Episodes, r.forecasts, r.o.Interval)
	for i, tr := range res.Truths {
		if forecast[tr.Bottleneck] {
			res.ForecastTruths++
		}
		if !tr.Detected || !forecast[tr.Bottleneck] {
			continue
		}
		l := Lead{Bottleneck: tr.Bottleneck, Instance: tr.Instance, DetectedAt: -1}
		for _, ep := range res.Episodes {
			if ep.Truth == i && (l.DetectedAt < 0 || ep.From < l.DetectedAt) {
				l.DetectedAt = ep.From
			}
		}
		for _, w := range res.Warnings {
			if w.Bottleneck != l.Bottleneck || w.Instance != l.Instance || w.From > l.DetectedAt || w.To < l.DetectedAt-warnHorizon {
				continue
			}
			if lead := l.DetectedAt - w.From; !l.Warned || lead > l.Lead {
				l.Warned, l.Lead = true, lead
			}
		}
		res.Leads = append(res.Leads, l)
	}
}

// scoreWarnings turns the forecast rules' firings into episodes and
// confirms each with the detections.
func scoreWarnings(detections []Episode, forecasts map[Detection][]time.Duration, interval time.Duration) []Warning {
	out := []Warning{}
	for _, d := range sortedDetections(forecasts) {
		for _, ep := range episodes(d, forecasts[d], interval) {
			w := Warning{Bottleneck: d.Bottleneck, Instance: d.Instance, From: ep.From, To: ep.To}
			w.Confirmed = slices.ContainsFunc(detections, func(e Episode) bool {
				return e.Bottleneck == w.Bottleneck && e.Instance == w.Instance && e.To >= w.From && e.From <= w.To+warnHorizon
			})
			out = append(out, w)
		}
	}
	return out
}

// ForecastSummary is how the forecast rules did over the replays: the
// lead over the detecting rules on the ramp scenarios, and the false
// alarms, on every scenario and on the healthy fleets (scenarios without
// any bottleneck).
type ForecastSummary struct {
	// Replays are the ramp scenarios' replays (each scenario at several
	// seeds) the leads are taken from: those of a bottleneck a forecast
	// rule watches.
	Replays int `json:"replays"`
	// Detections are the detected truths of forecast bottlenecks on
	// them, Warned those a warning came before.
	Detections int `json:"detections"`
	Warned     int `json:"warned"`
	// MedianLead and WorstLead are over Detections, a detection without a
	// warning counting zero.
	MedianLead time.Duration `json:"median_lead"`
	WorstLead  time.Duration `json:"worst_lead"`
	// Warnings are all warning episodes, FalseAlarms those not confirmed.
	Warnings    int `json:"warnings"`
	FalseAlarms int `json:"false_alarms"`
	// HealthyReplays and HealthyFalseAlarms are the same on the
	// scenarios without truth.
	HealthyReplays     int `json:"healthy_replays"`
	HealthyFalseAlarms int `json:"healthy_false_alarms"`
}

// summarizeForecasts sums the forecast results of the base library
// replays and of the extra-seed replays. ramp tells the ramp scenarios.
func summarizeForecasts(results []*ScenarioResult, ramp func(name string) bool) ForecastSummary {
	var s ForecastSummary
	var leads []time.Duration
	for _, r := range results {
		healthy := len(r.Truths) == 0
		if healthy {
			s.HealthyReplays++
		}
		for _, w := range r.Warnings {
			s.Warnings++
			if !w.Confirmed {
				s.FalseAlarms++
				if healthy {
					s.HealthyFalseAlarms++
				}
			}
		}
		if !ramp(r.Name) || r.ForecastTruths == 0 {
			continue
		}
		s.Replays++
		for _, l := range r.Leads {
			s.Detections++
			if l.Warned {
				s.Warned++
			}
			leads = append(leads, l.Lead)
		}
	}
	if len(leads) > 0 {
		slices.Sort(leads)
		s.WorstLead = leads[0]
		s.MedianLead = medianDuration(leads)
	}
	return s
}

// medianDuration is the median of sorted, which is not empty.
func medianDuration(sorted []time.Duration) time.Duration {
	m := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		m = (sorted[len(sorted)/2-1] + m) / 2
	}
	return m
}
