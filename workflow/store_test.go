package workflow

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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

// filledStore writes a store with enough workflows to span many pages and
// returns its file.
func filledStore(t *testing.T, dir string) string {
	t.Helper()
	s := openStore(t, dir)
	for i := range 200 {
		w := storedWorkflow(fmt.Sprintf("wf-%03d", i), fmt.Sprintf("inst-%03d", i))
		w.Change.Evidence = strings.Repeat("evidence ", 20)
		if err := s.Create(w); err != nil {
			t.Fatal(err)
		}
		if err := s.BeginExecution(w.ID+"/apply", t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, StoreFile)
}

// TestDamagedStoreIsRefused: a store file cut short or overwritten is
// refused with an error that names it and says what to do, and is left
// as it was; the store is never silently started empty.
func TestDamagedStoreIsRefused(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	garbage := func(b []byte) { // random bytes, as a stray write would leave
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"empty", func([]byte) []byte { return nil }, "the file is empty"},
		{"cut in half", func(b []byte) []byte { return b[:len(b)/2] }, "cut short"},
		{"cut to the meta pages", func(b []byte) []byte { return b[:3*4096+100] }, "cut short"},
		{"cut inside the meta pages", func(b []byte) []byte { return b[:5000] }, ""},
		{"meta pages overwritten", func(b []byte) []byte { garbage(b[:2*4096]); return b }, ""},
		{"data pages overwritten", func(b []byte) []byte { garbage(b[2*4096:]); return b }, ""},
		{"second half zeroed", func(b []byte) []byte { clear(b[len(b)/2:]); return b }, ""},
		{"whole file overwritten", func(b []byte) []byte { garbage(b); return b }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filledStore(t, dir)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tc.damage(b)
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenBoltStore(dir)
			if err == nil {
				s.Close()
				t.Fatal("a damaged store opened")
			}
			var derr *DamagedStoreError
			if !errors.As(err, &derr) || derr.Path != path {
				t.Fatalf("err = %v, want a DamagedStoreError naming %s", err, path)
			}
			for _, want := range []string{path, "damaged", "restore the file from a backup", "move it away", tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, damaged) {
				t.Error("opening changed the damaged file")
			}
		})
	}
}

// TestStoreCreatedWhole: a store file exists only once it is a whole
// store; what a crash left of an unfinished creation is replaced, and a
// store reopens with what it held.
func TestStoreCreatedWhole(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StoreFile+".new"), []byte("half a store"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	if err := s.Create(storedWorkflow("wf-1", "a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != StoreFile {
		t.Errorf("the store directory holds %v, want only %s", entries, StoreFile)
	}
	s = openStore(t, dir)
	defer s.Close()
	if _, err := s.Get("wf-1"); err != nil {
		t.Errorf("reopened: %v", err)
	}
}
