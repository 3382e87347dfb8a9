package workflow

import (
	"fmt"
	"time"
)

// State is where a workflow is in its life.
type State int

// States of a workflow. The zero value is StateProposed.
const (
	StateProposed State = iota
	StateAwaitingApproval
	StatePreflight
	StateApplying
	StateWarmup
	StateAnalysing
	StateStageGate
	StatePaused
	StatePromoting
	StateVerifying
	StateSucceeded
	StateRejected
	StateExpired
	StateCancelled
	StateAborted
	StateRollingBack
	StateRolledBack
	StateNeedsAttention
)

var stateNames = [...]string{
	StateProposed:         "proposed",
	StateAwaitingApproval: "awaiting_approval",
	StatePreflight:        "preflight",
	StateApplying:         "applying",
	StateWarmup:           "warmup",
	StateAnalysing:        "analysing",
	StateStageGate:        "stage_gate",
	StatePaused:           "paused",
	StatePromoting:        "promoting",
	StateVerifying:        "verifying",
	StateSucceeded:        "succeeded",
	StateRejected:         "rejected",
	StateExpired:          "expired",
	StateCancelled:        "cancelled",
	StateAborted:          "aborted",
	StateRollingBack:      "rolling_back",
	StateRolledBack:       "rolled_back",
	StateNeedsAttention:   "needs_attention",
}

// States returns every state in declaration order.
func States() []State {
	out := make([]State, len(stateNames))
	for i := range stateNames {
		out[i] = State(i)
	}
	return out
}

// String returns the state's wire name.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("state(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText encodes the state as its wire name.
func (s State) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(stateNames) {
		return nil, fmt.Errorf("encode workflow state %d: unknown state", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a wire name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("decode workflow state %q: unknown state", b)
}

// Terminal reports whether the workflow is over and its instances free.
func (s State) Terminal() bool {
	switch s {
	case StateSucceeded, StateRejected, StateExpired, StateCancelled, StateAborted, StateRolledBack:
		return true
	}
	return false
}

// Waiting reports whether the state waits for a human decision.
func (s State) Waiting() bool {
	return s == StateAwaitingApproval || s == StateStageGate || s == StatePaused
}

// EventType names what happened to a workflow.
type EventType string

// Event types. Submit, approve, reject, cancel, abort and rollback come
// from people or the caller; the rest from the controller.
const (
	EventSubmit               EventType = "submit"
	EventApprove              EventType = "approve"
	EventReject               EventType = "reject"
	EventExpire               EventType = "expire"
	EventCancel               EventType = "cancel"
	EventPreflightPassed      EventType = "preflight_passed"
	EventPreflightFailed      EventType = "preflight_failed"
	EventApplied              EventType = "applied"
	EventApplyFailed          EventType = "apply_failed"
	EventWarmupDone           EventType = "warmup_done"
	EventAnalysisPassed       EventType = "analysis_passed"
	EventAnalysisFailed       EventType = "analysis_failed"
	EventAnalysisInconclusive EventType = "analysis_inconclusive"
	EventPromoted             EventType = "promoted"
	EventVerified             EventType = "verified"
	EventAbort                EventType = "abort"
	EventRollback             EventType = "rollback"
	EventRolledBack           EventType = "rolled_back"
	EventRollbackFailed       EventType = "rollback_failed"
	EventGuardrailBreached    EventType = "guardrail_breached"
	// EventCanaryRestarted: a changed instance restarted on its own during
	// the analysis window; the window starts again after a warm-up.
	EventCanaryRestarted EventType = "canary_restarted"
	// EventResolved: a person marked the last still-changed instance as
	// restored by hand.
	EventResolved EventType = "resolved"
)

// Event is one entry of a workflow's append-only log.
type Event struct {
	Seq    int       `json:"seq"`
	Type   EventType `json:"type"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Stage  string    `json:"stage,omitempty"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
}

// ActionKind is a side effect a transition asks the controller for.
type ActionKind int

// Actions.
const (
	// ActionNotify asks to send the workflow's alerts now: a gate opened or
	// closed, or an outcome needs people. Everything else the controller
	// derives from the stored state on its next step.
	ActionNotify ActionKind = iota
)

// Action is a side effect requested by Transition.
type Action struct {
	Kind ActionKind
}

// target picks the next state for a defined (state, event) pair.
type target func(w Workflow) State

func to(s State) target { return func(Workflow) State { return s } }

// afterStage is where a workflow goes once a stage passed and any gate in
// front of the next step is settled.
func afterStage(w Workflow) State {
	if w.State == StatePaused && w.PausedFrom == StateVerifying {
		return StateSucceeded
	}
	if w.Stage+1 < len(w.Stages) {
		return StateApplying
	}
	return StatePromoting
}

// afterPass opens a gate in front of the next step when one is configured.
func afterPass(w Workflow) State {
	if w.Stage+1 < len(w.Stages) {
		if w.Stages[w.Stage+1].Gate {
			return StateStageGate
		}
		return StateApplying
	}
	if w.Settings.PromoteGate {
		return StateStageGate
	}
	return StatePromoting
}

// transitionTable lists every defined transition; anything else is an
// error. It is read-only.
var transitionTable = map[State]map[EventType]target{
	StateProposed: {
		EventSubmit: to(StateAwaitingApproval),
		EventCancel: to(StateCancelled),
		EventAbort:  to(StateCancelled),
	},
	StateAwaitingApproval: {
		EventApprove: to(StatePreflight),
		EventReject:  to(StateRejected),
		EventExpire:  to(StateExpired),
		EventCancel:  to(StateCancelled),
		EventAbort:   to(StateCancelled),
	},
	StatePreflight: {
		EventPreflightPassed: to(StateApplying),
		EventPreflightFailed: to(StateAborted),
		EventAbort:           to(StateAborted),
	},
	StateApplying: {
		EventApplied:     to(StateWarmup),
		EventApplyFailed: to(StateRollingBack),
		EventAbort:       to(StateRollingBack),
		EventRollback:    to(StateRollingBack),
	},
	StateWarmup: {
		EventWarmupDone:        to(StateAnalysing),
		EventGuardrailBreached: to(StateRollingBack),
		EventAbort:             to(StateRollingBack),
		EventRollback:          to(StateRollingBack),
	},
	StateAnalysing: {
		EventCanaryRestarted:      to(StateWarmup),
		EventAnalysisPassed:       afterPass,
		EventAnalysisFailed:       to(StateRollingBack),
		EventAnalysisInconclusive: to(StatePaused),
		EventGuardrailBreached:    to(StateRollingBack),
		EventAbort:                to(StateRollingBack),
		EventRollback:             to(StateRollingBack),
	},
	StateStageGate: {
		EventGuardrailBreached: to(StateRollingBack),
		EventApprove:           afterStage,
		EventReject:            to(StateRollingBack),
		EventExpire:            to(StateRollingBack),
		EventAbort:             to(StateRollingBack),
		EventRollback:          to(StateRollingBack),
	},
	StatePaused: {
		EventApprove:  afterStage,
		EventReject:   to(StateRollingBack),
		EventExpire:   to(StateRollingBack),
		EventAbort:    to(StateRollingBack),
		EventRollback: to(StateRollingBack),
	},
	StatePromoting: {
		EventPromoted:    to(StateVerifying),
		EventVerified:    to(StateSucceeded),
		EventApplyFailed: to(StateRollingBack),
		EventAbort:       to(StateRollingBack),
		EventRollback:    to(StateRollingBack),
	},
	StateVerifying: {
		EventCanaryRestarted:      to(StateVerifying),
		EventVerified:             to(StateSucceeded),
		EventGuardrailBreached:    to(StateRollingBack),
		EventAnalysisFailed:       to(StateRollingBack),
		EventAnalysisInconclusive: to(StatePaused),
		EventAbort:                to(StateRollingBack),
		EventRollback:             to(StateRollingBack),
	},
	StateRollingBack: {
		EventRolledBack:     to(StateRolledBack),
		EventRollbackFailed: to(StateNeedsAttention),
	},
	// A workflow that needs attention ends only when every changed
	// instance is restored, by a rollback or by hand: it cannot be
	// aborted with instances still changed.
	StateNeedsAttention: {
		EventRollback: to(StateRollingBack),
		EventResolved: to(StateRolledBack),
	},
}

// Transition applies ev to w at now and returns the new workflow and the
// side effects the controller must perform. It is pure: w is not modified.
// Undefined (state, event) pairs return an ErrInvalidTransition error.
func Transition(w Workflow, ev Event, now time.Time) (Workflow, []Action, error) {
	tf, ok := transitionTable[w.State][ev.Type]
	if !ok {
		return w, nil, fmt.Errorf("%w: %s on %s workflow %s", ErrInvalidTransition, ev.Type, w.State, w.ID)
	}
	from := w.State
	next := tf(w)
	n := w.clone()

	// Close the gate the workflow waited at.
	if from.Waiting() && len(n.Gates) > 0 && n.Gates[len(n.Gates)-1].Open() {
		g := &n.Gates[len(n.Gates)-1]
		g.ClosedAt = now
		g.Outcome = string(ev.Type)
	}
	switch next {
	case StateAwaitingApproval:
		n.Gates = append(n.Gates, Gate{Name: "start", OpenedAt: now, ExpiresAt: now.Add(n.Settings.ApprovalTTL)})
	case StateStageGate:
		name := "promote"
		if n.Stage+1 < len(n.Stages) {
			name = n.Stages[n.Stage+1].Name
		}
		n.Gates = append(n.Gates, Gate{Name: name, OpenedAt: now, ExpiresAt: now.Add(n.Settings.ApprovalTTL)})
	case StatePaused:
		n.PausedFrom = from
		n.Gates = append(n.Gates, Gate{Name: "inconclusive-" + n.StageName(), OpenedAt: now, ExpiresAt: now.Add(n.Settings.PauseTTL)})
	case StateApplying:
		if from == StatePreflight {
			n.Stage = 0
			n.ChangeStartedAt = now
		} else {
			n.Stage++
		}
		n.Deadline = time.Time{}
		n.WindowRestarts = 0
	case StatePromoting:
		n.Stage = len(n.Stages)
		n.Deadline = time.Time{}
		n.WindowRestarts = 0
	case StateWarmup:
		n.Deadline = now.Add(n.Settings.Warmup)
	case StateAnalysing:
		// The window starts when the warm-up ended, even if the step that
		// noticed it came late (the agent was down).
		n.WindowStart = now
		if !w.Deadline.IsZero() && w.Deadline.Before(now) {
			n.WindowStart = w.Deadline
		}
		n.Deadline = n.WindowStart.Add(n.Settings.Window)
	case StateVerifying:
		n.WindowStart = now.Add(n.Settings.Warmup)
		n.Deadline = n.WindowStart.Add(n.Settings.Window)
	case StateRollingBack:
		n.RollbackRounds++
		n.RollbackAttempts, n.NextAttemptAt = 0, time.Time{}
		n.Deadline = time.Time{}
	}
	if ev.Type == EventCanaryRestarted {
		n.WindowRestarts++
	}
	if next != StatePaused {
		n.PausedFrom = StateProposed
	}
	n.ErrorSince, n.ErrorTicks = time.Time{}, 0
	switch next {
	case StateWarmup, StateAnalysing, StateStageGate, StateVerifying:
		// Guardrail breaches keep counting while the same instances serve.
	default:
		n.GuardrailBreaches = 0
	}
	if next.Terminal() {
		n.FinishedAt = now
		n.Deadline = time.Time{}
	}
	n.State = next
	n.UpdatedAt = now
	ev.Seq = len(n.Events) + 1
	ev.From, ev.To, ev.Time = from, next, now
	if ev.Stage == "" && from != StateProposed && from != StateAwaitingApproval {
		ev.Stage = w.StageName()
	}
	n.Events = append(n.Events, ev)

	var actions []Action
	if from.Waiting() || next.Waiting() || next == StateRolledBack || next == StateNeedsAttention {
		actions = append(actions, Action{Kind: ActionNotify})
	}
	return n, actions, nil
}

// clone copies w deeply enough that appending to or editing its slices does
// not change w.
func (w Workflow) clone() Workflow {
	n := w
	n.Pool = append([]string(nil), w.Pool...)
	n.Stages = append([]Stage(nil), w.Stages...)
	n.Instances = append([]InstanceChange(nil), w.Instances...)
	n.Gates = append([]Gate(nil), w.Gates...)
	n.Decisions = append([]Decision(nil), w.Decisions...)
	n.Results = append([]StageResult(nil), w.Results...)
	n.Events = append([]Event(nil), w.Events...)
	return n
}
