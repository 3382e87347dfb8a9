package workflow

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// flakyFleet is an executor over instances with real values. Each call may
// fail before acting, or act and then report a failure (the change happened
// but the answer was lost); reads may fail too.
type flakyFleet struct {
	mu    sync.Mutex
	rng   *rand.Rand
	value map[string]string
	// failRate is the chance that a call fails; half of the failures act
	// before failing.
	failRate float64
	canRead  bool
}

func (f *flakyFleet) Execute(_ context.Context, r Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < f.failRate {
		if f.rng.IntN(2) == 0 {
			f.value[r.Instance] = r.To
		}
		return fmt.Errorf("%s on %s: injected failure", r.Operation, r.Instance)
	}
	f.value[r.Instance] = r.To
	return nil
}

func (f *flakyFleet) Read(_ context.Context, r Request) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.canRead {
		return "", ErrReadUnsupported
	}
	if f.rng.Float64() < f.failRate/2 {
		return "", errors.New("read: injected failure")
	}
	return f.value[r.Instance], nil
}

func (f *flakyFleet) get(inst string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value[inst]
}

func (f *flakyFleet) set(inst, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value[inst] = v
}

// TestNeverSilentlyChanged drives random workflows against an executor that
// fails at random steps, with people deciding, aborting, rolling back and
// restoring instances by hand at random, and asserts at every tick and at
// the end that each instance either has its original value or is listed as
// changed by its workflow.
func TestNeverSilentlyChanged(t *testing.T) {
	const runs = 150
	for seed := range uint64(runs) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			neverSilentlyChanged(t, seed)
		})
	}
}

func neverSilentlyChanged(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	store := openStore(t, t.TempDir())
	defer store.Close()

	pool := make([]string, 1+rng.IntN(4))
	original := map[string]string{}
	fleet := &flakyFleet{rng: rand.New(rand.NewPCG(seed, 7)), value: map[string]string{}, failRate: rng.Float64() * 0.6, canRead: rng.IntN(2) == 0}
	for i := range pool {
		pool[i] = fmt.Sprintf("i%d", i)
		// Instances of one pool may hold different values: each one must
		// get its own back.
		original[pool[i]] = fmt.Sprint(200 + 10*i)
		fleet.value[pool[i]] = original[pool[i]]
	}
	current := make([]CurrentValue, len(pool))
	for i, inst := range pool {
		current[i] = CurrentValue{Instance: inst, Value: original[inst], Source: "config"}
	}
	// Validation outcomes vary: some changes regress latency.
	regress := rng.IntN(3) == 0
	src := &fakeSource{rangeFn: func(signal, inst string, s, e time.Time) ([]float64, error) {
		v, _ := healthy(signal, inst, s, e)
		if regress && signal == "llm_time_to_first_token_seconds" && !s.Before(t0) && inst != "" && inst[0] == 'i' && fleet.get(inst) == "64" {
			for i := range v {
				v[i] *= 2
			}
		}
		return v, nil
	}}
	c, err := NewController(ControllerOptions{
		Store: store, Source: src, Executor: fleet, Approvers: testApprovers,
		Defaults:         Settings{ApprovalTTL: time.Hour, PauseTTL: 20 * time.Minute, Warmup: time.Minute, Window: 2 * time.Minute},
		RollbackAttempts: 1 + rng.IntN(4), RollbackBackoff: time.Minute, RollbackMaxBackoff: 4 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	change := testChange
	change.To = "64"
	w, err := c.Create(ctx, CreateRequest{ID: "wf", Change: change, Pool: pool, Current: current, Requester: "bob"}, t0)
	if err != nil {
		t.Fatal(err)
	}

	check := func(w Workflow, when string) {
		t.Helper()
		changed := w.Changed()
		for _, inst := range pool {
			if v := fleet.get(inst); v != original[inst] && !slices.Contains(changed, inst) {
				t.Fatalf("seed %d %s: %s holds %s (originally %s) but the workflow (%s) lists only %v as changed; events %s",
					seed, when, inst, v, original[inst], w.State, changed, eventPath(w))
			}
		}
	}
	now := t0
	for tick := 0; tick < 400; tick++ {
		w, err = c.Get(ctx, "wf")
		if err != nil {
			t.Fatal(err)
		}
		if w.State.Terminal() {
			break
		}
		// People act now and then.
		switch r := rng.IntN(20); {
		case w.State.Waiting() && r < 8:
			_, _ = c.Approve(ctx, "wf", "alice", w.ProposalHash, "", now)
		case w.State.Waiting() && r == 8:
			_, _ = c.Reject(ctx, "wf", "carol", w.ProposalHash, "", now)
		case r == 9:
			_, _ = c.Abort(ctx, "wf", "carol", "random abort", now)
		case r == 10:
			_, _ = c.Rollback(ctx, "wf", "alice", "random rollback", now)
		case w.State == StateNeedsAttention && r < 16:
			// Someone restores one instance by hand, then says so.
			if still := w.Changed(); len(still) > 0 {
				inst := still[rng.IntN(len(still))]
				fleet.set(inst, original[inst])
				if _, err := c.Resolve(ctx, "wf", inst, "alice", "restarted with the old flag", now); err != nil {
					t.Fatalf("seed %d: resolve %s: %v", seed, inst, err)
				}
			}
		}
		if err := c.Tick(ctx, now); err != nil {
			t.Fatalf("seed %d: tick: %v", seed, err)
		}
		w, _ = c.Get(ctx, "wf")
		check(w, fmt.Sprintf("tick %d", tick))
		now = now.Add(time.Minute)
	}
	check(w, "end")
	t.Logf("ended %s after %s", w.State, eventPath(w))
	switch w.State {
	case StateSucceeded:
		for _, inst := range pool {
			if v := fleet.get(inst); v != "64" {
				t.Fatalf("seed %d: succeeded but %s holds %s", seed, inst, v)
			}
		}
	case StateRolledBack, StateAborted, StateRejected, StateExpired, StateCancelled:
		for _, inst := range pool {
			if v := fleet.get(inst); v != original[inst] {
				t.Fatalf("seed %d: %s but %s holds %s, not %s", seed, w.State, inst, v, original[inst])
			}
		}
	}
}
