package workflow

import (
	"testing"
	"time"
)

func TestAlertPolicy(t *testing.T) {
	p := alertPolicy{agent: "agent-1", externalURL: "http://agent/", resend: time.Minute, resolvedFor: 5 * time.Minute, outcomeFor: time.Hour}
	base := testWorkflow(StateProposed)
	base.Change = testChange
	step := func(w Workflow, ev EventType, at time.Time) Workflow {
		t.Helper()
		n, _, err := Transition(w, Event{Type: ev, Actor: "x", Reason: string(ev)}, at)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	awaiting := step(base, EventSubmit, t0)
	approved := step(awaiting, EventApprove, t0.Add(10*time.Minute))
	stuck := step(step(testWorkflow(StateRollingBack), EventRollbackFailed, t0), EventRollback, t0.Add(time.Hour))
	stuck.Change = testChange
	frozen := step(testWorkflow(StateRollingBack), EventRollbackFailed, t0)
	rolledBack := step(testWorkflow(StateRollingBack), EventRolledBack, t0)

	type want struct {
		name   string
		gate   string
		endsAt time.Time
	}
	cases := []struct {
		name string
		w    Workflow
		now  time.Time
		want []want
	}{
		{"open gate fires", awaiting, t0.Add(time.Minute), []want{{AlertApprovalRequired, "start", t0.Add(5 * time.Minute)}}},
		{"decided gate resolves", approved, t0.Add(11 * time.Minute), []want{{AlertApprovalRequired, "start", t0.Add(10 * time.Minute)}}},
		{"resolved gate stops after 5m", approved, t0.Add(15 * time.Minute), nil},
		{"needs attention fires", frozen, t0.Add(2 * time.Hour), []want{{AlertNeedsAttention, "", t0.Add(2*time.Hour + 4*time.Minute)}}},
		{"needs attention resolves when left", stuck, t0.Add(time.Hour + time.Minute), []want{{AlertNeedsAttention, "", t0.Add(time.Hour)}}},
		{"needs attention resolved long ago", stuck, t0.Add(2 * time.Hour), nil},
		{"rolled back fires", rolledBack, t0.Add(time.Minute), []want{{AlertRolloutFailed, "", t0.Add(5 * time.Minute)}}},
		{"rolled back ends after an hour", rolledBack, t0.Add(59 * time.Minute), []want{{AlertRolloutFailed, "", t0.Add(time.Hour)}}},
		{"rolled back long ago", rolledBack, t0.Add(2 * time.Hour), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := p.alerts(tc.w, tc.now)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d alerts %+v, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				a := got[i]
				if a.Labels["alertname"] != w.name || a.Labels["gate"] != w.gate || !a.EndsAt.Equal(w.endsAt) {
					t.Fatalf("alert %d: %s gate %q endsAt %v, want %s gate %q endsAt %v",
						i, a.Labels["alertname"], a.Labels["gate"], a.EndsAt, w.name, w.gate, w.endsAt)
				}
				if a.Labels["workflow_id"] != "wf-1" || a.GeneratorURL != "http://agent/workflows/wf-1" {
					t.Fatalf("alert %d: labels %v, generator %s", i, a.Labels, a.GeneratorURL)
				}
			}
		})
	}
}
