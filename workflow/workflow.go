package workflow

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Direction says which way a signal is expected to move, or which way is bad.
type Direction string

// Directions of a target signal.
const (
	DirectionIncrease Direction = "increase"
	DirectionDecrease Direction = "decrease"
)

// Target is a signal the change is expected to move.
type Target struct {
	Signal string `json:"signal"`
	// Quantile selects one quantile of a latency signal; empty otherwise.
	Quantile string `json:"quantile,omitempty"`
	// Expected is the direction the change should move the signal in.
	Expected Direction `json:"expected"`
}

// Change is the one engine setting change a workflow carries. It mirrors a
// recommendation without depending on package recommender.
type Change struct {
	RecommendationID string   `json:"recommendation_id"`
	Engine           string   `json:"engine"`
	Model            string   `json:"model"`
	Kind             string   `json:"kind"`
	Flag             string   `json:"flag"`
	From             string   `json:"from"`
	To               string   `json:"to"`
	Unit             string   `json:"unit,omitempty"`
	Targets          []Target `json:"targets"`
	Risk             string   `json:"risk"`
	Evidence         string   `json:"evidence"`
}

// Stage is one step of the rollout: the instances that get the change in it.
type Stage struct {
	Name      string   `json:"name"`
	Instances []string `json:"instances"`
	// Gate asks a human to approve before this stage is applied. The first
	// stage is always gated by the start approval.
	Gate bool `json:"gate,omitempty"`
}

// Settings are the waits and policies of one workflow, fixed at creation.
type Settings struct {
	// ApprovalTTL is how long the start, stage and promote gates wait.
	ApprovalTTL time.Duration `json:"approval_ttl"`
	// PauseTTL is how long an inconclusive pause waits before rolling back.
	PauseTTL time.Duration `json:"pause_ttl"`
	// Warmup is excluded from analysis after a stage is applied.
	Warmup time.Duration `json:"warmup"`
	// Window is the analysis window after the warm-up.
	Window time.Duration `json:"window"`
	// PromoteGate asks a human before promoting to the rest of the pool.
	PromoteGate bool `json:"promote_gate,omitempty"`
}

// DefaultSettings are the settings of a workflow created without any.
func DefaultSettings() Settings {
	return Settings{ApprovalTTL: 24 * time.Hour, PauseTTL: time.Hour, Warmup: 5 * time.Minute, Window: 15 * time.Minute}
}

// Gate is one human decision point: opened when the workflow starts to
// wait, closed when decided, expired or cancelled.
type Gate struct {
	Name      string    `json:"name"`
	OpenedAt  time.Time `json:"opened_at"`
	ExpiresAt time.Time `json:"expires_at"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	Outcome   string    `json:"outcome,omitempty"`
}

// Open reports whether the gate still waits for a decision.
func (g Gate) Open() bool { return g.ClosedAt.IsZero() }

// Decision is a human's answer to a gate.
type Decision struct {
	Gate         string    `json:"gate"`
	User         string    `json:"user"`
	Approved     bool      `json:"approved"`
	ProposalHash string    `json:"proposal_hash"`
	Comment      string    `json:"comment,omitempty"`
	Time         time.Time `json:"time"`
}

// InstanceChange records the change on one instance. AppliedAt is set once
// the executor was called to apply, even if that call failed: a failed
// apply may have changed the instance, so rollback reverts it too.
type InstanceChange struct {
	Instance   string    `json:"instance"`
	Stage      string    `json:"stage"`
	AppliedAt  time.Time `json:"applied_at,omitzero"`
	RevertedAt time.Time `json:"reverted_at,omitzero"`
}

// Workflow is one change carried through a staged rollout on one pool.
type Workflow struct {
	ID           string   `json:"id"`
	Version      uint64   `json:"version"`
	Change       Change   `json:"change"`
	Pool         []string `json:"pool"`
	Requester    string   `json:"requester"`
	ProposalHash string   `json:"proposal_hash"`
	Settings     Settings `json:"settings"`
	Stages       []Stage  `json:"stages"`

	State State `json:"state"`
	// Stage indexes Stages while applying, warming up, analysing or at a
	// stage gate; it equals len(Stages) while promoting and verifying.
	Stage int `json:"stage"`
	// PausedFrom is the state a pause interrupted.
	PausedFrom State `json:"paused_from,omitempty"`
	// Deadline is the absolute end of the current wait (warm-up, window).
	Deadline time.Time `json:"deadline,omitzero"`
	// WindowStart is the start of the current analysis window.
	WindowStart time.Time `json:"window_start,omitzero"`
	// ChangeStartedAt is when the first instance was about to change; the
	// window before it is the baseline when no untouched instance is left.
	ChangeStartedAt time.Time `json:"change_started_at,omitzero"`
	// ErrorSince is when validation queries started failing, zero if not.
	ErrorSince time.Time `json:"error_since,omitzero"`
	ErrorTicks int       `json:"error_ticks,omitempty"`
	// GuardrailBreaches counts consecutive ticks with a guardrail breached.
	GuardrailBreaches int `json:"guardrail_breaches,omitempty"`
	RollbackRounds    int `json:"rollback_rounds,omitempty"`

	Instances []InstanceChange `json:"instances,omitempty"`
	Gates     []Gate           `json:"gates,omitempty"`
	Decisions []Decision       `json:"decisions,omitempty"`
	Results   []StageResult    `json:"results,omitempty"`
	Events    []Event          `json:"events,omitempty"`

	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// OpenGate returns the gate waiting for a decision, if any.
func (w Workflow) OpenGate() (Gate, bool) {
	if n := len(w.Gates); n > 0 && w.Gates[n-1].Open() {
		return w.Gates[n-1], true
	}
	return Gate{}, false
}

// StageName returns the name of the current stage ("promote" past the last).
func (w Workflow) StageName() string {
	if w.Stage < len(w.Stages) {
		return w.Stages[w.Stage].Name
	}
	return "promote"
}

// StageInstances returns the instances the current stage changes; while
// promoting, every pool instance no stage names.
func (w Workflow) StageInstances() []string {
	if w.Stage < len(w.Stages) {
		return w.Stages[w.Stage].Instances
	}
	staged := map[string]bool{}
	for _, s := range w.Stages {
		for _, inst := range s.Instances {
			staged[inst] = true
		}
	}
	var out []string
	for _, inst := range w.Pool {
		if !staged[inst] {
			out = append(out, inst)
		}
	}
	return out
}

// Changed returns the instances that hold the new value (applied and not
// reverted), in the order they were changed.
func (w Workflow) Changed() []string {
	var out []string
	for _, ic := range w.Instances {
		if !ic.AppliedAt.IsZero() && ic.RevertedAt.IsZero() {
			out = append(out, ic.Instance)
		}
	}
	return out
}

// Untouched returns pool instances that never got the change.
func (w Workflow) Untouched() []string {
	var out []string
	for _, inst := range w.Pool {
		if _, ok := w.instance(inst); !ok {
			out = append(out, inst)
		}
	}
	return out
}

func (w Workflow) instance(name string) (InstanceChange, bool) {
	for _, ic := range w.Instances {
		if ic.Instance == name {
			return ic, true
		}
	}
	return InstanceChange{}, false
}

// ProposalHash identifies what an approval approves: the change, the pool
// and the stages. A different proposal has a different hash.
func ProposalHash(c Change, pool []string, stages []Stage) string {
	p := append([]string(nil), pool...)
	sort.Strings(p)
	// Marshalling strings, slices and bools cannot fail.
	b, _ := json.Marshal(struct {
		Change Change   `json:"change"`
		Pool   []string `json:"pool"`
		Stages []Stage  `json:"stages"`
	}{c, p, stages})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// DefaultStages splits a pool into one canary instance, then half, then all.
// Pools of one or two instances get fewer stages.
func DefaultStages(pool []string) []Stage {
	var stages []Stage
	done := 0
	for i, upto := range []int{1, (len(pool) + 1) / 2, len(pool)} {
		if upto <= done {
			continue
		}
		stages = append(stages, Stage{Name: fmt.Sprintf("stage-%d", i+1), Instances: append([]string(nil), pool[done:upto]...)})
		done = upto
	}
	for i := range stages {
		stages[i].Name = fmt.Sprintf("stage-%d", i+1)
	}
	return stages
}
