package workflow

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
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
	RecommendationID string `json:"recommendation_id"`
	Engine           string `json:"engine"`
	Model            string `json:"model"`
	Kind             string `json:"kind"`
	Flag             string `json:"flag"`
	// Setting is the flag's key among an instance's settings
	// (max_num_seqs for --max-num-seqs), for messages and configuration.
	Setting string `json:"setting,omitempty"`
	// From is the value the proposal was computed from; each instance's
	// own value is in Workflow.Current and, once changed, InstanceChange.
	From     string   `json:"from"`
	To       string   `json:"to"`
	Unit     string   `json:"unit,omitempty"`
	Targets  []Target `json:"targets"`
	Risk     string   `json:"risk"`
	Evidence string   `json:"evidence"`
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
// In JSON the durations are strings such as "5m" (see MarshalJSON).
type Settings struct {
	// ApprovalTTL is how long the start, stage and promote gates wait.
	ApprovalTTL time.Duration
	// PauseTTL is how long an inconclusive pause waits before rolling back.
	PauseTTL time.Duration
	// Warmup is excluded from analysis after a stage is applied.
	Warmup time.Duration
	// Window is the analysis window after the warm-up.
	Window time.Duration
	// PromoteGate asks a human before promoting to the rest of the pool.
	PromoteGate bool
}

// settingsJSON is the wire form of Settings.
type settingsJSON struct {
	ApprovalTTL jsonDuration `json:"approval_ttl"`
	PauseTTL    jsonDuration `json:"pause_ttl"`
	Warmup      jsonDuration `json:"warmup"`
	Window      jsonDuration `json:"window"`
	PromoteGate bool         `json:"promote_gate,omitempty"`
}

// MarshalJSON writes the durations as Prometheus duration strings ("5m").
func (s Settings) MarshalJSON() ([]byte, error) {
	return json.Marshal(settingsJSON{jsonDuration(s.ApprovalTTL), jsonDuration(s.PauseTTL), jsonDuration(s.Warmup), jsonDuration(s.Window), s.PromoteGate})
}

// UnmarshalJSON reads duration strings, and the nanosecond numbers that
// stores written by earlier versions hold.
func (s *Settings) UnmarshalJSON(b []byte) error {
	var j settingsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Settings{time.Duration(j.ApprovalTTL), time.Duration(j.PauseTTL), time.Duration(j.Warmup), time.Duration(j.Window), j.PromoteGate}
	return nil
}

// jsonDuration is a duration written as a string such as "1h30m".
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(model.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*d = jsonDuration(n)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"5m\"", b)
	}
	v, err := model.ParseDuration(str)
	if err != nil {
		return fmt.Errorf("duration %q: %w", str, err)
	}
	*d = jsonDuration(v)
	return nil
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

// InstanceChange records the change on one instance. It is written before
// the executor is called to apply, so that a crash or a failed call that
// may still have changed the instance is rolled back too.
type InstanceChange struct {
	Instance string `json:"instance"`
	Stage    string `json:"stage"`
	// From is the value the instance had right before the change, the
	// value a rollback restores; FromSource says how it was learnt.
	From       string    `json:"from"`
	FromSource string    `json:"from_source"`
	AppliedAt  time.Time `json:"applied_at,omitzero"`
	RevertedAt time.Time `json:"reverted_at,omitzero"`
	// Resolved is set when a person marked the instance as put back by
	// hand after automatic rollbacks failed.
	Resolved *Resolution `json:"resolved,omitempty"`
}

// Where the value to roll back to came from.
const (
	// FromRead: the executor read the instance right before applying.
	FromRead = "executor_read"
	// FromProposal: the value known when the workflow was created (the
	// engine's metrics or info endpoints, the configuration, or an
	// executor read then), used when the executor cannot read.
	FromProposal = "proposal"
)

// Resolution is a person's statement that an instance holds its original
// value again.
type Resolution struct {
	User   string    `json:"user"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// CurrentValue is the value of the changed setting on one pool instance
// when the workflow was proposed, and where it was read.
type CurrentValue struct {
	Instance string `json:"instance"`
	Value    string `json:"value"`
	Source   string `json:"source"`
}

// Workflow is one change carried through a staged rollout on one pool.
type Workflow struct {
	ID      string   `json:"id"`
	Version uint64   `json:"version"`
	Change  Change   `json:"change"`
	Pool    []string `json:"pool"`
	// Current is the setting's value on every pool instance at proposal.
	Current []CurrentValue `json:"current"`
	// Baseline are instances of the same engine, model and capacity that
	// the workflow does not change; validation compares with them.
	Baseline     []string `json:"baseline"`
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
	// RollbackAttempts counts the failed attempts of the current rollback
	// round; NextAttemptAt is when the next one is due.
	RollbackAttempts int       `json:"rollback_attempts,omitempty"`
	NextAttemptAt    time.Time `json:"next_attempt_at,omitzero"`
	// WindowRestarts counts analysis windows of the current stage that
	// were started again because a canary restarted on its own.
	WindowRestarts int `json:"window_restarts,omitempty"`

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

// Changed returns the instances that may hold the new value (an apply was
// started, and they were neither reverted nor resolved by hand), in the
// order they were changed.
func (w Workflow) Changed() []string {
	var out []string
	for _, ic := range w.Instances {
		if ic.changed() {
			out = append(out, ic.Instance)
		}
	}
	return out
}

func (ic InstanceChange) changed() bool {
	return !ic.AppliedAt.IsZero() && ic.RevertedAt.IsZero() && ic.Resolved == nil
}

// SameValue reports whether two renderings of a setting are the same
// value: engines print "0.90" or "True" where a configuration says "0.9"
// or "true".
func SameValue(a, b string) bool {
	if a == b {
		return true
	}
	fa, errA := strconv.ParseFloat(a, 64)
	fb, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil {
		return fa == fb
	}
	ba, errA := strconv.ParseBool(strings.ToLower(a))
	bb, errB := strconv.ParseBool(strings.ToLower(b))
	return errA == nil && errB == nil && ba == bb
}

// CurrentOf returns the value instance had at proposal.
func (w Workflow) CurrentOf(instance string) (CurrentValue, bool) {
	for _, c := range w.Current {
		if c.Instance == instance {
			return c, true
		}
	}
	return CurrentValue{}, false
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

// ProposalHash identifies what an approval approves: the change, the pool,
// each instance's current value and the stages. A different proposal has
// a different hash.
func ProposalHash(c Change, pool []string, current []CurrentValue, stages []Stage) string {
	p := append([]string(nil), pool...)
	sort.Strings(p)
	cur := append([]CurrentValue(nil), current...)
	sort.Slice(cur, func(i, j int) bool { return cur[i].Instance < cur[j].Instance })
	// Marshalling strings, slices and bools cannot fail.
	b, _ := json.Marshal(struct {
		Change  Change         `json:"change"`
		Pool    []string       `json:"pool"`
		Current []CurrentValue `json:"current"`
		Stages  []Stage        `json:"stages"`
	}{c, p, cur, stages})
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
