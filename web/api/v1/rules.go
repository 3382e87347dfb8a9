package v1

import (
	"net/http"
	"slices"
	"time"

	promrules "github.com/prometheus/prometheus/rules"

	"github.com/optiinfra/perfagent/rules"
)

// Rules is what the API needs of the bottleneck rule manager.
type Rules interface {
	Bottlenecks() []rules.Bottleneck
	RuleGroups() []*promrules.Group
}

// bottleneckFilters are the query parameters of GET /api/v1/bottlenecks,
// each matched exactly against the field of the same name.
var bottleneckFilters = []struct {
	param string
	field func(rules.Bottleneck) string
	valid func(string) bool
}{
	{"instance", func(b rules.Bottleneck) string { return b.Instance }, nil},
	{"engine", func(b rules.Bottleneck) string { return b.Engine }, nil},
	{"model", func(b rules.Bottleneck) string { return b.Model }, nil},
	{"category", func(b rules.Bottleneck) string { return string(b.Category) }, func(v string) bool {
		return slices.Contains(rules.Categories(), rules.Category(v))
	}},
	{"severity", func(b rules.Bottleneck) string { return string(b.Severity) }, func(v string) bool {
		return slices.Contains(rules.Severities(), rules.Severity(v))
	}},
	{"state", func(b rules.Bottleneck) string { return string(b.State) }, func(v string) bool {
		return v == string(rules.StatePending) || v == string(rules.StateFiring)
	}},
}

func (a *API) bottlenecks(r *http.Request) (any, *apiError) {
	q := r.URL.Query()
	for _, f := range bottleneckFilters {
		if v := q.Get(f.param); v != "" && f.valid != nil && !f.valid(v) {
			return nil, badData(f.param, "%q is not a known value", v)
		}
	}
	out := []rules.Bottleneck{}
	for _, b := range a.o.Rules.Bottlenecks() {
		keep := true
		for _, f := range bottleneckFilters {
			if v := q.Get(f.param); v != "" && f.field(b) != v {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, b)
		}
	}
	return map[string]any{"bottlenecks": out}, nil
}

// RuleGroup is one group of GET /api/v1/rules.
type RuleGroup struct {
	Name           string     `json:"name"`
	File           string     `json:"file"`
	Interval       float64    `json:"interval"`
	Rules          []RuleInfo `json:"rules"`
	LastEvaluation time.Time  `json:"lastEvaluation"`
	EvaluationTime float64    `json:"evaluationTime"`
}

// RuleInfo is one rule with its health.
type RuleInfo struct {
	Name           string            `json:"name"`
	Query          string            `json:"query"`
	Type           string            `json:"type"`
	Duration       float64           `json:"duration,omitempty"`
	KeepFiringFor  float64           `json:"keepFiringFor,omitempty"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	Health         string            `json:"health"`
	LastError      string            `json:"lastError,omitempty"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
	EvaluationTime float64           `json:"evaluationTime"`
	ActiveAlerts   int               `json:"activeAlerts"`
}

func (a *API) rules(*http.Request) (any, *apiError) {
	groups := []RuleGroup{}
	for _, g := range a.o.Rules.RuleGroups() {
		rg := RuleGroup{
			Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(),
			LastEvaluation: g.GetLastEvaluation(), EvaluationTime: g.GetEvaluationTime().Seconds(),
			Rules: []RuleInfo{},
		}
		for _, r := range g.Rules() {
			ri := RuleInfo{
				Name: r.Name(), Query: r.Query().String(), Labels: r.Labels().Map(),
				Health: string(r.Health()), LastEvaluation: r.GetEvaluationTimestamp(),
				EvaluationTime: r.GetEvaluationDuration().Seconds(), Type: "recording",
			}
			if err := r.LastError(); err != nil {
				ri.LastError = err.Error()
			}
			if ar, ok := r.(*promrules.AlertingRule); ok {
				ri.Type = "alerting"
				ri.Duration = ar.HoldDuration().Seconds()
				ri.KeepFiringFor = ar.KeepFiringFor().Seconds()
				ri.Annotations = ar.Annotations().Map()
				ri.ActiveAlerts = len(ar.ActiveAlerts())
			}
			rg.Rules = append(rg.Rules, ri)
		}
		groups = append(groups, rg)
	}
	return map[string]any{"groups": groups}, nil
}
