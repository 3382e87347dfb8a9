package workflow

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func allEventTypes() []EventType {
	return []EventType{
		EventSubmit, EventApprove, EventReject, EventExpire, EventCancel, EventPreflightPassed, EventPreflightFailed,
		EventApplied, EventApplyFailed, EventWarmupDone, EventAnalysisPassed, EventAnalysisFailed,
		EventAnalysisInconclusive, EventPromoted, EventVerified, EventAbort, EventRollback, EventRolledBack,
		EventRollbackFailed, EventGuardrailBreached, EventCanaryRestarted, EventResolved,
	}
}

func testWorkflow(s State) Workflow {
	pool := []string{"a", "b", "c", "d"}
	return Workflow{
		ID: "wf-1", Pool: pool, Stages: DefaultStages(pool), Settings: DefaultSettings(), State: s,
		Gates: func() []Gate {
			if s.Waiting() {
				return []Gate{{Name: "start", OpenedAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(time.Hour)}}
			}
			return nil
		}(),
	}
}

func TestTransitionTable(t *testing.T) {
	at := func(s State, mod func(*Workflow)) Workflow {
		w := testWorkflow(s)
		if mod != nil {
			mod(&w)
		}
		return w
	}
	lastStage := func(w *Workflow) { w.Stage = len(w.Stages) - 1 }
	gated := func(w *Workflow) { w.Stages[1].Gate = true }
	promoteGate := func(w *Workflow) { lastStage(w); w.Settings.PromoteGate = true }
	fromVerifying := func(w *Workflow) { w.PausedFrom = StateVerifying; w.Stage = len(w.Stages) }

	cases := []struct {
		name  string
		w     Workflow
		ev    EventType
		want  State
		stage int
	}{
		{"proposed submit", at(StateProposed, nil), EventSubmit, StateAwaitingApproval, 0},
		{"proposed cancel", at(StateProposed, nil), EventCancel, StateCancelled, 0},
		{"proposed abort", at(StateProposed, nil), EventAbort, StateCancelled, 0},
		{"awaiting approve", at(StateAwaitingApproval, nil), EventApprove, StatePreflight, 0},
		{"awaiting reject", at(StateAwaitingApproval, nil), EventReject, StateRejected, 0},
		{"awaiting expire", at(StateAwaitingApproval, nil), EventExpire, StateExpired, 0},
		{"awaiting cancel", at(StateAwaitingApproval, nil), EventCancel, StateCancelled, 0},
		{"awaiting abort", at(StateAwaitingApproval, nil), EventAbort, StateCancelled, 0},
		{"preflight passed", at(StatePreflight, nil), EventPreflightPassed, StateApplying, 0},
		{"preflight failed", at(StatePreflight, nil), EventPreflightFailed, StateAborted, 0},
		{"preflight abort", at(StatePreflight, nil), EventAbort, StateAborted, 0},
		{"applying applied", at(StateApplying, nil), EventApplied, StateWarmup, 0},
		{"applying failed", at(StateApplying, nil), EventApplyFailed, StateRollingBack, 0},
		{"applying abort", at(StateApplying, nil), EventAbort, StateRollingBack, 0},
		{"applying rollback", at(StateApplying, nil), EventRollback, StateRollingBack, 0},
		{"warmup done", at(StateWarmup, nil), EventWarmupDone, StateAnalysing, 0},
		{"warmup abort", at(StateWarmup, nil), EventAbort, StateRollingBack, 0},
		{"warmup guardrail", at(StateWarmup, nil), EventGuardrailBreached, StateRollingBack, 0},
		{"analysing guardrail", at(StateAnalysing, nil), EventGuardrailBreached, StateRollingBack, 0},
		{"stage gate guardrail", at(StateStageGate, nil), EventGuardrailBreached, StateRollingBack, 0},
		{"verifying guardrail", at(StateVerifying, nil), EventGuardrailBreached, StateRollingBack, 0},
		{"warmup rollback", at(StateWarmup, nil), EventRollback, StateRollingBack, 0},
		{"analysing pass next stage", at(StateAnalysing, nil), EventAnalysisPassed, StateApplying, 1},
		{"analysing pass gated stage", at(StateAnalysing, gated), EventAnalysisPassed, StateStageGate, 0},
		{"analysing pass last stage", at(StateAnalysing, lastStage), EventAnalysisPassed, StatePromoting, 3},
		{"analysing pass promote gate", at(StateAnalysing, promoteGate), EventAnalysisPassed, StateStageGate, 2},
		{"analysing fail", at(StateAnalysing, nil), EventAnalysisFailed, StateRollingBack, 0},
		{"analysing inconclusive", at(StateAnalysing, nil), EventAnalysisInconclusive, StatePaused, 0},
		{"analysing abort", at(StateAnalysing, nil), EventAbort, StateRollingBack, 0},
		{"analysing rollback", at(StateAnalysing, nil), EventRollback, StateRollingBack, 0},
		{"stage gate approve", at(StateStageGate, nil), EventApprove, StateApplying, 1},
		{"stage gate approve promote", at(StateStageGate, lastStage), EventApprove, StatePromoting, 3},
		{"stage gate reject", at(StateStageGate, nil), EventReject, StateRollingBack, 0},
		{"stage gate expire", at(StateStageGate, nil), EventExpire, StateRollingBack, 0},
		{"stage gate abort", at(StateStageGate, nil), EventAbort, StateRollingBack, 0},
		{"stage gate rollback", at(StateStageGate, nil), EventRollback, StateRollingBack, 0},
		{"paused approve", at(StatePaused, nil), EventApprove, StateApplying, 1},
		{"paused approve after verifying", at(StatePaused, fromVerifying), EventApprove, StateSucceeded, 3},
		{"paused reject", at(StatePaused, nil), EventReject, StateRollingBack, 0},
		{"paused expire", at(StatePaused, nil), EventExpire, StateRollingBack, 0},
		{"paused abort", at(StatePaused, nil), EventAbort, StateRollingBack, 0},
		{"paused rollback", at(StatePaused, nil), EventRollback, StateRollingBack, 0},
		{"promoting promoted", at(StatePromoting, nil), EventPromoted, StateVerifying, 0},
		{"promoting failed", at(StatePromoting, nil), EventApplyFailed, StateRollingBack, 0},
		{"promoting abort", at(StatePromoting, nil), EventAbort, StateRollingBack, 0},
		{"promoting rollback", at(StatePromoting, nil), EventRollback, StateRollingBack, 0},
		{"verifying verified", at(StateVerifying, nil), EventVerified, StateSucceeded, 0},
		{"verifying fail", at(StateVerifying, nil), EventAnalysisFailed, StateRollingBack, 0},
		{"verifying inconclusive", at(StateVerifying, nil), EventAnalysisInconclusive, StatePaused, 0},
		{"verifying abort", at(StateVerifying, nil), EventAbort, StateRollingBack, 0},
		{"verifying rollback", at(StateVerifying, nil), EventRollback, StateRollingBack, 0},
		{"rolling back done", at(StateRollingBack, nil), EventRolledBack, StateRolledBack, 0},
		{"rolling back failed", at(StateRollingBack, nil), EventRollbackFailed, StateNeedsAttention, 0},
		{"needs attention rollback", at(StateNeedsAttention, nil), EventRollback, StateRollingBack, 0},
		{"needs attention resolved", at(StateNeedsAttention, nil), EventResolved, StateRolledBack, 0},
		{"analysing canary restarted", at(StateAnalysing, nil), EventCanaryRestarted, StateWarmup, 0},
		{"verifying canary restarted", at(StateVerifying, nil), EventCanaryRestarted, StateVerifying, 0},
		{"promoting nothing left", at(StatePromoting, nil), EventVerified, StateSucceeded, 0},
	}
	defined := 0
	for _, byEvent := range transitionTable {
		defined += len(byEvent)
	}
	seen := map[[2]string]bool{}
	for _, tc := range cases {
		seen[[2]string{tc.w.State.String(), string(tc.ev)}] = true
	}
	if len(seen) != defined {
		t.Fatalf("cases cover %d (state, event) pairs, the table defines %d", len(seen), defined)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.w.clone()
			got, _, err := Transition(tc.w, Event{Type: tc.ev, Actor: "alice", Reason: "because"}, t0)
			if err != nil {
				t.Fatalf("Transition: %v", err)
			}
			if got.State != tc.want {
				t.Fatalf("state = %s, want %s", got.State, tc.want)
			}
			if tc.stage != 0 && got.Stage != tc.stage {
				t.Fatalf("stage = %d, want %d", got.Stage, tc.stage)
			}
			if len(got.Events) != len(tc.w.Events)+1 {
				t.Fatalf("events = %d, want one more than %d", len(got.Events), len(tc.w.Events))
			}
			ev := got.Events[len(got.Events)-1]
			if ev.From != tc.w.State || ev.To != tc.want || !ev.Time.Equal(t0) || ev.Actor != "alice" || ev.Reason != "because" || ev.Seq != 1 {
				t.Fatalf("event = %+v", ev)
			}
			if len(tc.w.Events) != len(before.Events) || tc.w.State != before.State || len(tc.w.Gates) != len(before.Gates) {
				t.Fatal("Transition modified its input")
			}
			if tc.w.State.Waiting() && tc.w.Gates[0].Open() == got.Gates[0].Open() {
				t.Fatal("leaving a waiting state must close its gate")
			}
			if tc.want.Waiting() {
				g, ok := got.OpenGate()
				if !ok || !g.ExpiresAt.After(t0) {
					t.Fatalf("entering %s must open a gate with an expiry, got %+v", tc.want, got.Gates)
				}
			}
			if tc.want.Terminal() != !got.FinishedAt.IsZero() {
				t.Fatalf("FinishedAt = %v for %s", got.FinishedAt, tc.want)
			}
		})
	}
}

func TestTransitionUndefined(t *testing.T) {
	undefined := 0
	for _, s := range States() {
		for _, e := range allEventTypes() {
			if _, ok := transitionTable[s][e]; ok {
				continue
			}
			undefined++
			w := testWorkflow(s)
			got, acts, err := Transition(w, Event{Type: e, Actor: "x"}, t0)
			if !errors.Is(err, ErrInvalidTransition) {
				t.Fatalf("%s on %s: err = %v, want ErrInvalidTransition", e, s, err)
			}
			if got.State != s || len(got.Events) != 0 || acts != nil {
				t.Fatalf("%s on %s changed the workflow", e, s)
			}
		}
	}
	// Terminal states accept nothing.
	for _, s := range States() {
		if s.Terminal() && len(transitionTable[s]) != 0 {
			t.Fatalf("terminal state %s has transitions", s)
		}
	}
	if undefined < 200 {
		t.Fatalf("only %d undefined pairs checked", undefined)
	}
	if _, _, err := Transition(testWorkflow(StateSucceeded), Event{Type: "bogus"}, t0); !errors.Is(err, ErrInvalidTransition) {
		t.Fatalf("unknown event type: err = %v", err)
	}
}

func TestStateText(t *testing.T) {
	for _, s := range States() {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Fatalf("round trip of %s gave %s, %v", s, back, err)
		}
	}
	if _, err := State(99).MarshalText(); err == nil {
		t.Fatal("unknown state encoded")
	}
	var s State
	if err := s.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("unknown name decoded")
	}
	if State(99).String() != "state(99)" {
		t.Fatalf("String of unknown state = %q", State(99).String())
	}
}

func TestDefaultStages(t *testing.T) {
	cases := []struct {
		pool []string
		want [][]string
	}{
		{[]string{"a"}, [][]string{{"a"}}},
		{[]string{"a", "b"}, [][]string{{"a"}, {"b"}}},
		{[]string{"a", "b", "c"}, [][]string{{"a"}, {"b"}, {"c"}}},
		{[]string{"a", "b", "c", "d"}, [][]string{{"a"}, {"b"}, {"c", "d"}}},
		{[]string{"a", "b", "c", "d", "e"}, [][]string{{"a"}, {"b", "c"}, {"d", "e"}}},
	}
	for _, tc := range cases {
		got := DefaultStages(tc.pool)
		if len(got) != len(tc.want) {
			t.Fatalf("%v: %d stages, want %d", tc.pool, len(got), len(tc.want))
		}
		for i := range got {
			if want := "stage-" + string(rune('1'+i)); got[i].Name != want {
				t.Fatalf("%v: stage %d named %q", tc.pool, i, got[i].Name)
			}
			if len(got[i].Instances) != len(tc.want[i]) {
				t.Fatalf("%v: stage %d = %v, want %v", tc.pool, i, got[i].Instances, tc.want[i])
			}
			for j := range got[i].Instances {
				if got[i].Instances[j] != tc.want[i][j] {
					t.Fatalf("%v: stage %d = %v, want %v", tc.pool, i, got[i].Instances, tc.want[i])
				}
			}
		}
	}
}

func TestTransitionTimes(t *testing.T) {
	w := testWorkflow(StateWarmup)
	w.Deadline = t0.Add(-time.Hour) // the agent was down when the warm-up ended
	n, _, err := Transition(w, Event{Type: EventWarmupDone}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !n.WindowStart.Equal(t0.Add(-time.Hour)) || !n.Deadline.Equal(t0.Add(-time.Hour).Add(w.Settings.Window)) {
		t.Fatalf("late warm-up end: window %v to %v", n.WindowStart, n.Deadline)
	}
	w = testWorkflow(StatePreflight)
	n, _, _ = Transition(w, Event{Type: EventPreflightPassed}, t0)
	if !n.ChangeStartedAt.Equal(t0) || n.Stage != 0 {
		t.Fatalf("preflight passed: change started %v, stage %d", n.ChangeStartedAt, n.Stage)
	}
	n, _, _ = Transition(n, Event{Type: EventApplied}, t0)
	if !n.Deadline.Equal(t0.Add(w.Settings.Warmup)) {
		t.Fatalf("warm-up deadline %v", n.Deadline)
	}
	w = testWorkflow(StatePromoting)
	n, _, _ = Transition(w, Event{Type: EventPromoted}, t0)
	if !n.WindowStart.Equal(t0.Add(w.Settings.Warmup)) || !n.Deadline.Equal(n.WindowStart.Add(w.Settings.Window)) {
		t.Fatalf("verifying window %v to %v", n.WindowStart, n.Deadline)
	}
}
