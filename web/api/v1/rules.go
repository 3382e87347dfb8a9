package v1

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/rules"
)

// Rules is what the API needs of the bottleneck rule manager.
type Rules interface {
	Bottlenecks() []rules.Bottleneck
	RuleGroups() []*promrules.Group
	// GroupEvaluation returns the last evaluation of a group of
	// RuleGroups, and false when it has not been evaluated yet.
	GroupEvaluation(g *promrules.Group) (rules.GroupEvaluation, bool)
	// Annotations returns the annotation templates of an alerting rule
	// of RuleGroups.
	Annotations(ar *promrules.AlertingRule) labels.Labels
	// Rule returns the expression and labels of an alerting rule of
	// RuleGroups as its file gives them.
	Rule(ar *promrules.AlertingRule) (expr string, lset labels.Labels)
	Detect(ctx context.Context, at time.Time, o rules.DetectOptions) ([]rules.Bottleneck, error)
}

// DetectRequest is the body of POST /api/v1/analysis/detect-bottlenecks.
type DetectRequest struct {
	// Instances keeps these instances; empty keeps all.
	Instances []string `json:"instances,omitempty"`
	// Rules keeps these alert names; empty keeps all.
	Rules []string `json:"rules,omitempty"`
	// At is the evaluation time, RFC 3339 or Unix seconds; empty is now.
	At string `json:"at,omitempty"`
}

// detect evaluates the rules now or at a past time without touching the
// live state.
func (a *API) detect(r *http.Request) (any, *apiError) {
	var req DetectRequest
	if apiErr := a.decode(r, &req); apiErr != nil {
		return nil, apiErr
	}
	now := a.o.Now()
	at := now
	if req.At != "" {
		t, err := parseTime(req.At)
		if err != nil {
			return nil, badData("at", "%v", err)
		}
		if t.After(now) {
			return nil, badData("at", "%s is in the future; signals exist up to now", t.Format(time.RFC3339))
		}
		at = t
	}
	// The instances' models bound the evaluation: the rules compare an
	// instance with the other replicas of its model, never with others.
	var models []string
	if len(req.Instances) > 0 {
		snap := a.o.Collector.Latest()
		for _, name := range req.Instances {
			var in *collector.Instance
			if snap != nil {
				in = snap.Instance(name)
			}
			if in == nil {
				return nil, notFound("instances: %q is not known; GET /api/v1/instances lists the instances", name)
			}
			if !slices.Contains(models, in.Model) {
				models = append(models, in.Model)
			}
		}
	}
	bs, err := a.o.Rules.Detect(r.Context(), at, rules.DetectOptions{Instances: req.Instances, Rules: req.Rules, Models: models})
	if errors.Is(err, rules.ErrUnknownRule) {
		return nil, badData("rules", "%v; GET /api/v1/rules lists the rules", err)
	}
	if err != nil {
		return nil, &apiError{typ: ErrInternal, status: http.StatusInternalServerError, err: err}
	}
	return DetectResponse{Time: at, Bottlenecks: nonNil(bs)}, nil
}

// DetectResponse is the answer of POST /api/v1/analysis/detect-bottlenecks.
type DetectResponse struct {
	// Time is when the rules were evaluated.
	Time        time.Time          `json:"time"`
	Bottlenecks []rules.Bottleneck `json:"bottlenecks"`
}

// BottlenecksResponse is the answer of GET /api/v1/bottlenecks.
type BottlenecksResponse struct {
	Bottlenecks []rules.Bottleneck `json:"bottlenecks"`
	// NextPageToken, as page_token, asks for the next page; it is left
	// out on the last.
	NextPageToken string `json:"next_page_token,omitempty"`
}

// RulesResponse is the answer of GET /api/v1/rules.
type RulesResponse struct {
	Groups []RuleGroup `json:"groups"`
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
	items, next, apiErr := page(out, q)
	if apiErr != nil {
		return nil, apiErr
	}
	return BottlenecksResponse{Bottlenecks: items, NextPageToken: next}, nil
}

// RuleGroup is one group of GET /api/v1/rules.
type RuleGroup struct {
	Name           string     `json:"name"`
	File           string     `json:"file"`
	Interval       float64    `json:"interval_seconds"`
	Rules          []RuleInfo `json:"rules"`
	LastEvaluation time.Time  `json:"last_evaluation"`
	EvaluationTime float64    `json:"evaluation_time_seconds"`
}

// RuleInfo is one rule with its health.
type RuleInfo struct {
	Name           string            `json:"name"`
	Query          string            `json:"query"`
	Type           string            `json:"type"`
	Duration       float64           `json:"duration_seconds,omitempty"`
	KeepFiringFor  float64           `json:"keep_firing_for_seconds,omitempty"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	Health         string            `json:"health"`
	LastError      string            `json:"last_error,omitempty"`
	LastEvaluation time.Time         `json:"last_evaluation"`
	EvaluationTime float64           `json:"evaluation_time_seconds"`
	ActiveAlerts   int               `json:"active_alerts"`
}

func (a *API) rules(*http.Request) (any, *apiError) {
	groups := []RuleGroup{}
	for _, g := range a.o.Rules.RuleGroups() {
		rg := RuleGroup{Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(), Rules: []RuleInfo{}}
		if e, ok := a.o.Rules.GroupEvaluation(g); ok {
			rg.LastEvaluation, rg.EvaluationTime = e.At, e.Took.Seconds()
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
				ri.Annotations = a.o.Rules.Annotations(ar).Map()
				expr, lset := a.o.Rules.Rule(ar)
				ri.Query, ri.Labels = expr, lset.Map()
				ri.ActiveAlerts = len(ar.ActiveAlerts())
			}
			rg.Rules = append(rg.Rules, ri)
		}
		groups = append(groups, rg)
	}
	return RulesResponse{Groups: groups}, nil
}
