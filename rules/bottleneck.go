package rules

import (
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/signals"
)

// Category is the value of labels.category: which resource a bottleneck
// is about.
type Category string

// Categories.
const (
	CategoryMemory      Category = "memory"
	CategoryLatency     Category = "latency"
	CategoryThroughput  Category = "throughput"
	CategoryUtilization Category = "utilization"
	CategoryErrors      Category = "errors"
)

// Categories lists the allowed categories.
func Categories() []Category {
	return []Category{CategoryMemory, CategoryLatency, CategoryThroughput, CategoryUtilization, CategoryErrors}
}

func categoryNames() []string {
	var out []string
	for _, c := range Categories() {
		out = append(out, string(c))
	}
	return out
}

// Severity is the value of labels.severity.
type Severity string

// Severities, in rising order.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Severities lists the allowed severities in rising order.
func Severities() []Severity {
	return []Severity{SeverityInfo, SeverityWarning, SeverityCritical}
}

func severityNames() []string {
	var out []string
	for _, s := range Severities() {
		out = append(out, string(s))
	}
	return out
}

// rank orders severities, unknown ones lowest.
func (s Severity) rank() int {
	for i, v := range Severities() {
		if v == s {
			return i + 1
		}
	}
	return 0
}

// State is the state of an active bottleneck.
type State string

// States of an active bottleneck: pending while its condition has held
// for less than the rule's `for`, firing after.
const (
	StatePending State = "pending"
	StateFiring  State = "firing"
)

// Bottleneck is one active alert of a bottleneck rule: one rule on one
// model server (or whatever identity the rule's expression keeps).
type Bottleneck struct {
	// Rule is the alert name, e.g. LLMKVCachePressure.
	Rule string `json:"rule"`
	// ID is labels.bottleneck (B1…B13 for the built-in pack), or empty.
	ID       string   `json:"id,omitempty"`
	Category Category `json:"category"`
	Severity Severity `json:"severity"`
	State    State    `json:"state"`
	Instance string   `json:"instance"`
	Engine   string   `json:"engine"`
	Model    string   `json:"model"`
	// Labels are all labels of the alert, alertname included.
	Labels labels.Labels `json:"labels"`
	// ActiveAt is when the condition started to hold (restored across
	// restarts); FiredAt is when it turned firing, zero while pending.
	ActiveAt time.Time `json:"active_at"`
	FiredAt  time.Time `json:"fired_at"`
	// Value is the value of the rule's expression at the last evaluation.
	Value       float64 `json:"value"`
	Summary     string  `json:"summary"`
	Description string  `json:"description"`
	RunbookURL  string  `json:"runbook_url,omitempty"`
	// Recommendations are the ids of annotations.recommend, in order.
	Recommendations []string `json:"recommendations"`
	// Evidence holds the values, at the last evaluation, of every signal
	// (and SLO target) the rule's expression reads, for this instance.
	Evidence []signals.Sample `json:"evidence"`
}

// Forecast is the resource whose saturation the rule forecasts
// (labels.forecast), or empty for a rule that detects a bottleneck
// present now. A forecast names the bottleneck it warns of in ID.
func (b Bottleneck) Forecast() string { return b.Labels.Get(LabelForecast) }
