package recommender

import "time"

// Action kinds.
const (
	// KindFlag changes one engine flag.
	KindFlag = "flag"
	// KindReplicas changes the number of replicas of a model.
	KindReplicas = "replicas"
	// KindManual is an operational change with no engine flag.
	KindManual = "manual"
)

// Effect directions.
const (
	Increase = "increase"
	Decrease = "decrease"
)

// Recommendation is one concrete, sized change.
type Recommendation struct {
	ID string `json:"id"`
	// Rank orders all results of one pass, 1 first.
	Rank int `json:"rank"`
	// Instance is empty for replica actions, whose Action.Instances lists
	// the replicas.
	Instance string `json:"instance"`
	Engine   string `json:"engine"`
	Model    string `json:"model"`
	// Bottlenecks addressed, in triage order.
	Bottlenecks []string   `json:"bottlenecks"`
	Action      Action     `json:"action"`
	Effects     []Effect   `json:"effects"`
	Confidence  float64    `json:"confidence"`
	Factors     []Factor   `json:"confidence_factors"`
	Risk        string     `json:"risk"`
	Evidence    []Evidence `json:"evidence"`
	Rationale   string     `json:"rationale"`
	// Notes say what was missing, assumed or superseded.
	Notes []string  `json:"notes,omitempty"`
	Time  time.Time `json:"time"`
	// Cost is the expected cost change, when the instances are priced
	// (package cost, docs/cost.md).
	Cost *CostChange `json:"cost,omitempty"`
}

// CostChange is a recommendation's expected effect on cost, in the
// currency of the configured GPU prices.
type CostChange struct {
	// Currency is the ISO 4217 code of every figure, cost.currency.
	Currency string       `json:"currency"`
	PerHour  CostEstimate `json:"per_hour"`
	// PromptPerMillionTokens and GenerationPerMillionTokens are the cost
	// of a million tokens of each direction, the hour's cost split
	// between them as perfagent_cost_per_million_tokens splits it; each
	// is absent when the instances produced no tokens of its direction.
	PromptPerMillionTokens     *CostEstimate `json:"prompt_per_million_tokens,omitempty"`
	GenerationPerMillionTokens *CostEstimate `json:"generation_per_million_tokens,omitempty"`
	// PerMillionTokens is over prompt and generated tokens together;
	// absent when the instances produced no tokens.
	PerMillionTokens *CostEstimate `json:"per_million_tokens,omitempty"`
	// Basis says how the estimate was made.
	Basis string `json:"basis"`
}

// CostEstimate is a cost now and after a change.
type CostEstimate struct {
	Current  float64 `json:"current"`
	Estimate float64 `json:"estimate"`
	// Change is Estimate − Current: negative saves.
	Change float64 `json:"change"`
}

// Action is what to change. Flag actions fill Flag, Setting, Current,
// Proposed and Unit; replica actions fill From and To.
type Action struct {
	Kind string `json:"kind"`
	Flag string `json:"flag,omitempty"`
	// Setting is the collector.Settings key of the flag.
	Setting  string `json:"setting,omitempty"`
	Current  string `json:"current,omitempty"`
	Proposed string `json:"proposed,omitempty"`
	Unit     string `json:"unit,omitempty"`
	From     int    `json:"from,omitempty"`
	To       int    `json:"to,omitempty"`
	// Instances are the replicas a replica action counts.
	Instances []string `json:"instances,omitempty"`
	// Note describes a manual action.
	Note string `json:"note,omitempty"`
}

// Effect is an expected change of one signal, checkable later.
type Effect struct {
	Signal    string `json:"signal"`
	Quantile  string `json:"quantile,omitempty"`
	Direction string `json:"direction"`
	// Current is the signal's value now, when known.
	Current *float64 `json:"current,omitempty"`
	// Estimate is the expected value after the change, when a formula
	// gives one.
	Estimate *float64 `json:"estimate,omitempty"`
}

// Factor is one term of a confidence product.
type Factor struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Reason string  `json:"reason"`
}

// Sources of evidence other than engine settings, whose sources are
// collector.SettingFromMetrics, SettingFromProbe and SettingFromConfig.
const (
	SourceSignal  = "signal"
	SourceFinding = "finding"
	SourceHistory = "history"
	// SourceModel is a model shape or GPU from the configuration or Input.
	SourceModel = "model"
	// SourceDefault is an engine default from the catalog, assumed because
	// the instance did not report the setting.
	SourceDefault = "default"
)

// Evidence is one input value a recommendation used.
type Evidence struct {
	Name     string `json:"name"`
	Quantile string `json:"quantile,omitempty"`
	Value    string `json:"value"`
	// Source is one of the Source constants or a collector setting source.
	Source string    `json:"source"`
	Time   time.Time `json:"time"`
}

// Skip says why a recommendation a finding asked for was not produced.
type Skip struct {
	ID       string `json:"id"`
	Instance string `json:"instance"`
	Engine   string `json:"engine"`
	Model    string `json:"model"`
	Reason   string `json:"reason"`
}

// Report is the full outcome of one pass.
type Report struct {
	Recommendations []Recommendation `json:"recommendations"`
	Skipped         []Skip           `json:"skipped"`
}
