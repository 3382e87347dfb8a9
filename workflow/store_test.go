package workflow

import (
	"errors"
	"testing"
	"time"
)

func openStore(t *testing.T, dir string) *BoltStore {
	t.Helper()
	s, err := OpenBoltStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func storedWorkflow(id string, pool ...string) Workflow {
	w := Workflow{ID: id, Pool: pool, Stages: DefaultStages(pool), Settings: DefaultSettings(), CreatedAt: t0, Change: Change{Engine: "vllm", Model: "m"}}
	w, _, _ = Transition(w, Event{Type: EventSubmit, Actor: "bob"}, t0)
	return w
}

func TestBoltStore(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if err := s.Create(storedWorkflow("wf-1", "a", "b")); err != nil {
		t.Fatal(err)
	}
	err := s.Create(storedWorkflow("wf-2", "c", "b"))
	var conflict *ConflictError
	if !errors.As(err, &conflict) || !errors.Is(err, ErrConflict) || conflict.Instance != "b" || conflict.Workflow != "wf-1" {
		t.Fatalf("overlapping pool: err = %v, want a conflict on b with wf-1", err)
	}
	if err := s.Create(storedWorkflow("wf-1", "z")); !errors.Is(err, ErrInvalidChange) {
		t.Fatalf("duplicate id: err = %v", err)
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown: err = %v", err)
	}

	// An update appends events and bumps the version; a failing one changes nothing.
	w, err := s.Update("wf-1", func(w Workflow) (Workflow, error) {
		n, _, err := Transition(w, Event{Type: EventReject, Actor: "alice"}, t0.Add(time.Minute))
		return n, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.Version != 1 || w.State != StateRejected || len(w.Events) != 2 {
		t.Fatalf("after update: version %d state %s events %d", w.Version, w.State, len(w.Events))
	}
	boom := errors.New("boom")
	if _, err := s.Update("wf-1", func(w Workflow) (Workflow, error) { w.Requester = "x"; return w, boom }); !errors.Is(err, boom) {
		t.Fatalf("failing update: err = %v", err)
	}
	if _, err := s.Update("wf-1", func(w Workflow) (Workflow, error) { w.Events = w.Events[:1]; return w, nil }); err == nil {
		t.Fatal("an update removed events")
	}

	// The terminal state released the locks.
	if err := s.Create(storedWorkflow("wf-2", "c", "b")); err != nil {
		t.Fatalf("pool free again: %v", err)
	}

	// Executions.
	if _, found, err := s.Execution("k"); err != nil || found {
		t.Fatalf("unknown execution: found=%v err=%v", found, err)
	}
	if err := s.BeginExecution("k", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginExecution("k", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishExecution("k", t0, errors.New("exit 1")); err != nil {
		t.Fatal(err)
	}
	if err := s.BeginExecution("k", t0); err == nil {
		t.Fatal("began a finished execution")
	}

	// Everything survives a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir)
	defer s.Close()
	got, err := s.Get("wf-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateRejected || got.Version != 1 || len(got.Events) != 2 || got.Events[1].Actor != "alice" || got.Requester == "x" {
		t.Fatalf("reopened: %+v", got)
	}
	e, found, err := s.Execution("k")
	if err != nil || !found || e.Attempts != 2 || !e.Done() || e.Error != "exit 1" {
		t.Fatalf("reopened execution: %+v found=%v err=%v", e, found, err)
	}
	all, err := s.List(Filter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("List: %d workflows, err %v", len(all), err)
	}
	active, err := s.List(Filter{Active: true})
	if err != nil || len(active) != 1 || active[0].ID != "wf-2" {
		t.Fatalf("List active: %v, err %v", active, err)
	}
	byState, err := s.List(Filter{States: []State{StateRejected}, Engine: "vllm", Model: "m"})
	if err != nil || len(byState) != 1 || byState[0].ID != "wf-1" {
		t.Fatalf("List by state: %v, err %v", byState, err)
	}
	recent, err := s.List(Filter{FinishedAfter: t0.Add(30 * time.Second), NoEvents: true})
	if err != nil || len(recent) != 2 || recent[0].Events != nil {
		t.Fatalf("List finished after: %v, err %v", recent, err)
	}
	if older, _ := s.List(Filter{FinishedAfter: t0.Add(2 * time.Minute)}); len(older) != 1 || older[0].ID != "wf-2" {
		t.Fatalf("List finished after the rejection: %v", older)
	}
	if none, _ := s.List(Filter{Model: "other"}); len(none) != 0 {
		t.Fatalf("List by model matched %d", len(none))
	}
}
