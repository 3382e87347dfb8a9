package workflow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var errCrash = errors.New("simulated crash")

// crashStore kills the "process" right after its crashAt-th write has been
// committed: that write and every later call fail with errCrash.
type crashStore struct {
	Store
	writes  *int
	crashAt int
	dead    bool
}

func (s *crashStore) wrote(err error) error {
	if s.dead {
		return errCrash
	}
	if err != nil {
		return err
	}
	*s.writes++
	if *s.writes == s.crashAt {
		s.dead = true
		return errCrash
	}
	return nil
}

func (s *crashStore) Create(w Workflow) error {
	if s.dead {
		return errCrash
	}
	return s.wrote(s.Store.Create(w))
}

func (s *crashStore) Update(id string, fn func(Workflow) (Workflow, error)) (Workflow, error) {
	if s.dead {
		return Workflow{}, errCrash
	}
	w, err := s.Store.Update(id, fn)
	return w, s.wrote(err)
}

func (s *crashStore) BeginExecution(key string, now time.Time) error {
	if s.dead {
		return errCrash
	}
	return s.wrote(s.Store.BeginExecution(key, now))
}

func (s *crashStore) FinishExecution(key string, now time.Time, err error) error {
	if s.dead {
		return errCrash
	}
	return s.wrote(s.Store.FinishExecution(key, now, err))
}

func (s *crashStore) Get(id string) (Workflow, error) {
	if s.dead {
		return Workflow{}, errCrash
	}
	return s.Store.Get(id)
}

func (s *crashStore) List(f Filter) ([]Workflow, error) {
	if s.dead {
		return nil, errCrash
	}
	return s.Store.List(f)
}

func (s *crashStore) Execution(key string) (Execution, bool, error) {
	if s.dead {
		return Execution{}, false, errCrash
	}
	return s.Store.Execution(key)
}

type crashRun struct {
	exec     *fakeExecutor
	final    Workflow
	writes   int
	restarts int
}

// runWithCrashes carries one workflow from approval to the end, re-opening
// the store and building a new controller before every step. The process
// "dies" after write number crashWrite, or inside executor call number
// crashCall (after the executor acted); the step is then retried by a new
// process, as a restarted agent would.
func runWithCrashes(t *testing.T, crashWrite, crashCall int, fail func(Request) error) crashRun {
	t.Helper()
	dir := t.TempDir()
	run := crashRun{exec: newFakeExecutor()}
	run.exec.crash = func(n int, _ Request) bool { return n == crashCall }
	run.exec.fail = fail
	pool := []string{"a", "b", "c", "d"}
	stages := []Stage{{Name: "stage-1", Instances: []string{"a"}}, {Name: "stage-2", Instances: []string{"b"}}}
	var hash string
	crashed := false

	step := func(name string, fn func(ctx context.Context, c *Controller) error) {
		for attempt := 0; ; attempt++ {
			if attempt > 3 {
				t.Fatalf("%s: still failing after restarts", name)
			}
			bolt := openStore(t, dir)
			cs := &crashStore{Store: bolt, writes: &run.writes, crashAt: -1}
			if !crashed {
				cs.crashAt = crashWrite
			}
			ctx, cancel := context.WithCancel(context.Background())
			run.exec.mu.Lock()
			run.exec.cancel = cancel
			run.exec.mu.Unlock()
			c := newTestController(t, cs, &fakeSource{rangeFn: healthy}, run.exec, nil, nil)
			err := fn(ctx, c)
			cancel()
			if err := bolt.Close(); err != nil {
				t.Fatal(err)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, errCrash) && !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: %v", name, err)
			}
			crashed = true
			run.restarts++
		}
	}

	step("create", func(ctx context.Context, c *Controller) error {
		w, err := c.Create(ctx, CreateRequest{ID: "wf-1", Change: testChange, Pool: pool, Current: currentOf(pool), Stages: stages, Requester: "bob"}, t0)
		if errors.Is(err, ErrInvalidChange) {
			// Created before the crash: the retry finds it.
			w, err = c.Get(ctx, "wf-1")
		}
		hash = w.ProposalHash
		return err
	})
	step("approve", func(ctx context.Context, c *Controller) error {
		_, err := c.Approve(ctx, "wf-1", "alice", hash, "ok", t0.Add(time.Minute))
		return err
	})
	now := t0.Add(2 * time.Minute)
	for range 60 {
		step("tick", func(ctx context.Context, c *Controller) error { return c.Tick(ctx, now) })
		bolt := openStore(t, dir)
		w, err := bolt.Get("wf-1")
		bolt.Close()
		if err != nil {
			t.Fatal(err)
		}
		if w.State.Terminal() || w.State.Waiting() {
			run.final = w
			return run
		}
		now = now.Add(time.Minute)
	}
	t.Fatal("workflow did not finish")
	return run
}

// crashWant is how a crash-tested run must end.
type crashWant struct {
	path      string
	keys      int
	values    map[string]string
	instances int
}

var (
	wantSucceeded = crashWant{
		path:      "awaiting_approval>preflight>applying>warmup>analysing>applying>warmup>analysing>promoting>verifying>succeeded",
		keys:      4,
		values:    map[string]string{"a": "128", "b": "128", "c": "128", "d": "128"},
		instances: 4,
	}
	wantApplyFailed = crashWant{
		path:      "awaiting_approval>preflight>applying>warmup>analysing>applying>rolling_back>rolled_back",
		keys:      4, // apply a, apply b (failed), rollback b, rollback a
		values:    map[string]string{"a": "256", "b": "256"},
		instances: 2,
	}
)

func checkCrashRun(t *testing.T, run crashRun, want crashWant, twiceKey string) {
	t.Helper()
	w := run.final
	if p := eventPath(w); p != want.path {
		t.Fatalf("path %s, want %s", p, want.path)
	}
	for i, ev := range w.Events {
		if ev.Seq != i+1 {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
	if len(w.Decisions) != 1 || w.Decisions[0].User != "alice" || len(w.Gates) != 1 || w.Gates[0].Outcome != string(EventApprove) {
		t.Fatalf("approval lost or doubled: decisions %+v gates %+v", w.Decisions, w.Gates)
	}
	if len(run.exec.calls) != want.keys {
		t.Fatalf("%d idempotency keys, want %d: %v", len(run.exec.calls), want.keys, run.exec.order)
	}
	for k, n := range run.exec.calls {
		want := 1
		if k == twiceKey {
			want = 2
		}
		if n != want {
			t.Fatalf("key %s called %d times, want %d (calls %v)", k, n, want, run.exec.order)
		}
	}
	for inst, v := range want.values {
		if run.exec.value[inst] != v {
			t.Fatalf("%s = %q, want %q", inst, run.exec.value[inst], v)
		}
	}
	if len(run.exec.value) != len(want.values) || len(w.Instances) != want.instances {
		t.Fatalf("instances %+v", w.Instances)
	}
}

// TestCrashResume kills the agent after every single durable write of a
// full run and, separately, inside every executor call, and checks that
// the restarted agent finishes the same run without calling the executor
// twice for a key whose outcome was recorded, and without losing the
// approval.
func TestCrashResume(t *testing.T) {
	failB := func(r Request) error {
		if r.Instance == "b" && r.Operation == OperationApply {
			return errors.New("instance b did not become ready")
		}
		return nil
	}
	for _, tc := range []struct {
		name string
		fail func(Request) error
		want crashWant
	}{
		{"succeeds", nil, wantSucceeded},
		{"apply fails", failB, wantApplyFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clean := runWithCrashes(t, -1, -1, tc.fail)
			checkCrashRun(t, clean, tc.want, "")
			t.Logf("clean run: %d writes, executor calls %v", clean.writes, clean.exec.order)
			if clean.restarts != 0 || clean.writes < 15 {
				t.Fatalf("clean run: %d restarts, %d writes", clean.restarts, clean.writes)
			}
			for crashAt := 1; crashAt <= clean.writes; crashAt++ {
				run := runWithCrashes(t, crashAt, -1, tc.fail)
				if run.restarts != 1 {
					t.Fatalf("crash after write %d: %d restarts", crashAt, run.restarts)
				}
				checkCrashRun(t, run, tc.want, "")
			}
			for call, key := range clean.exec.order {
				if tc.fail != nil && tc.fail(Request{Instance: strings.Split(key, "/")[2], Operation: OperationApply}) != nil && strings.HasSuffix(key, "/apply") {
					// A failing call returns before it could act.
					continue
				}
				run := runWithCrashes(t, -1, call+1, tc.fail)
				if run.restarts != 1 {
					t.Fatalf("crash in call %d: %d restarts", call+1, run.restarts)
				}
				// The executor acted but the agent died before recording it:
				// the call is repeated once with the same key, which the
				// executor de-duplicates.
				checkCrashRun(t, run, tc.want, key)
			}
		})
	}
}
