package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// readingExecutor is a fakeExecutor that can read the values it holds.
type readingExecutor struct {
	*fakeExecutor
	readErr error
}

func (r *readingExecutor) Read(_ context.Context, req Request) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.readErr != nil {
		return "", r.readErr
	}
	return r.value[req.Instance], nil
}

func TestCreateNeedsCurrentValues(t *testing.T) {
	ctx := context.Background()
	change := testChange
	change.Setting = "max_num_seqs"

	t.Run("unknown and unreadable", func(t *testing.T) {
		store := openStore(t, t.TempDir())
		defer store.Close()
		c := newTestController(t, store, &fakeSource{rangeFn: healthy}, newFakeExecutor(), nil, nil)
		_, err := c.Create(ctx, CreateRequest{Change: change, Pool: []string{"a", "b"}, Current: []CurrentValue{{Instance: "a", Value: "256"}}, Requester: "bob"}, t0)
		var unknown *UnknownCurrentError
		if !errors.As(err, &unknown) || !errors.Is(err, ErrUnknownCurrent) || !slices.Equal(unknown.Instances, []string{"b"}) {
			t.Fatalf("err = %v, want the current value unknown on b", err)
		}
		for _, part := range []string{"max-num-seqs", "on b", "settings: {max_num_seqs:", "workflow.webhook.read"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("message lacks %q: %s", part, err)
			}
		}
		if ws, _ := c.List(ctx, Filter{}); len(ws) != 0 {
			t.Fatalf("a refused workflow was stored: %+v", ws)
		}
	})
	t.Run("read by the executor", func(t *testing.T) {
		store := openStore(t, t.TempDir())
		defer store.Close()
		exec := &readingExecutor{fakeExecutor: newFakeExecutor()}
		exec.value["a"], exec.value["b"] = "256", "300"
		c := newTestController(t, store, &fakeSource{rangeFn: healthy}, exec, nil, nil)
		w, err := c.Create(ctx, CreateRequest{Change: change, Pool: []string{"a", "b"}, Current: []CurrentValue{{Instance: "a", Value: "256", Source: "metrics"}}, Requester: "bob"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		want := []CurrentValue{{Instance: "a", Value: "256", Source: "metrics"}, {Instance: "b", Value: "300", Source: FromRead}}
		if !slices.Equal(w.Current, want) {
			t.Fatalf("current %+v, want %+v", w.Current, want)
		}
	})
	t.Run("already at the new value", func(t *testing.T) {
		store := openStore(t, t.TempDir())
		defer store.Close()
		c := newTestController(t, store, &fakeSource{rangeFn: healthy}, newFakeExecutor(), nil, nil)
		_, err := c.Create(ctx, CreateRequest{Change: change, Pool: []string{"a"}, Current: []CurrentValue{{Instance: "a", Value: change.To}}, Requester: "bob"}, t0)
		if !errors.Is(err, ErrInvalidChange) || !strings.Contains(err.Error(), "already has") {
			t.Fatalf("err = %v", err)
		}
	})
}

// start creates and approves a workflow over pool with per-instance values.
func start(t *testing.T, c *Controller, pool []string, current []CurrentValue) Workflow {
	t.Helper()
	w, err := c.Create(context.Background(), CreateRequest{ID: "wf-1", Change: testChange, Pool: pool, Current: current, Requester: "bob"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if w, err = c.Approve(context.Background(), "wf-1", "alice", w.ProposalHash, "", t0); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestRollbackRestoresEachInstancesOwnValue(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	exec := &readingExecutor{fakeExecutor: newFakeExecutor()}
	exec.value["a"], exec.value["b"] = "256", "300"
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, exec, nil, nil)
	start(t, c, []string{"a", "b"}, []CurrentValue{{Instance: "a", Value: "256"}, {Instance: "b", Value: "300"}})
	w, at := tickUntil(t, c, "wf-1", t0, StateWarmup)
	if w.Stage != 0 {
		_, _ = tickUntil(t, c, "wf-1", at, StateWarmup)
	}
	_, at = tickUntil(t, c, "wf-1", at, StateSucceeded, StateWarmup)
	w, _ = c.Get(context.Background(), "wf-1")
	for w.State != StateWarmup || len(w.Changed()) < 2 {
		w, at = tickUntil(t, c, "wf-1", at.Add(time.Minute), StateWarmup, StateSucceeded)
		if w.State == StateSucceeded {
			t.Fatalf("succeeded before both were changed and could be rolled back")
		}
	}
	for _, ic := range w.Instances {
		if want := map[string]string{"a": "256", "b": "300"}[ic.Instance]; ic.From != want || ic.FromSource != FromRead {
			t.Fatalf("%s recorded from %q (%s), want %q read by the executor", ic.Instance, ic.From, ic.FromSource, want)
		}
	}
	if _, err := c.Rollback(context.Background(), "wf-1", "carol", "undo", at); err != nil {
		t.Fatal(err)
	}
	w, _ = tickUntil(t, c, "wf-1", at, StateRolledBack)
	if exec.value["a"] != "256" || exec.value["b"] != "300" {
		t.Fatalf("after rollback a=%s b=%s, want 256 and 300", exec.value["a"], exec.value["b"])
	}
}

func TestApplyRefusesAValueChangedSinceApproval(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	exec := &readingExecutor{fakeExecutor: newFakeExecutor()}
	exec.value["a"] = "256"
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, exec, nil, nil)
	start(t, c, []string{"a"}, []CurrentValue{{Instance: "a", Value: "256"}})
	exec.value["a"] = "512" // someone else changed it after the approval
	w, _ := tickUntil(t, c, "wf-1", t0, StateRolledBack, StateWarmup)
	if w.State != StateRolledBack || len(w.Instances) != 0 || exec.value["a"] != "512" || len(exec.calls) != 0 {
		t.Fatalf("state %s, instances %+v, a=%s, calls %v", w.State, w.Instances, exec.value["a"], exec.calls)
	}
	if r := w.Events[len(w.Events)-2].Reason; !strings.Contains(r, "now 512, not 256") {
		t.Fatalf("reason %q", r)
	}
}

func TestRollbackRetriedWithBackoff(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	exec := newFakeExecutor()
	failures := 2
	exec.fail = func(r Request) error {
		if r.Operation == OperationRollback && failures > 0 {
			failures--
			return errors.New("connection refused")
		}
		return nil
	}
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, exec, nil, nil)
	start(t, c, []string{"a"}, currentOf([]string{"a"}))
	_, at := tickUntil(t, c, "wf-1", t0, StateWarmup)
	if _, err := c.Rollback(context.Background(), "wf-1", "carol", "undo", at); err != nil {
		t.Fatal(err)
	}
	w, _ := tickUntil(t, c, "wf-1", at, StateRolledBack, StateNeedsAttention)
	if w.State != StateRolledBack || exec.value["a"] != "256" {
		t.Fatalf("state %s, a=%s", w.State, exec.value["a"])
	}
	for _, k := range []string{"wf-1/stage-1/a/rollback", "wf-1/stage-1/a/rollback-1.2", "wf-1/stage-1/a/rollback-1.3"} {
		if exec.calls[k] != 1 {
			t.Fatalf("key %s called %d times; calls %v", k, exec.calls[k], exec.order)
		}
	}
}

func TestNeedsAttentionUntilRestored(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	am := &recordingSink{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	reg.MustRegister(NewWorkflowsCollector(store))
	exec := newFakeExecutor()
	exec.fail = func(r Request) error {
		if r.Operation == OperationRollback {
			return errors.New("instance does not start")
		}
		return nil
	}
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, exec, am, m)
	ctx := context.Background()
	pool := []string{"a", "b"}
	start(t, c, pool, currentOf(pool))
	w, at := tickUntil(t, c, "wf-1", t0, StateAnalysing)
	for len(w.Changed()) < 2 {
		w, at = tickUntil(t, c, "wf-1", at.Add(time.Minute), StateAnalysing, StateWarmup)
	}
	if _, err := c.Abort(ctx, "wf-1", "carol", "stop", at); err != nil {
		t.Fatal(err)
	}
	w, at = tickUntil(t, c, "wf-1", at, StateNeedsAttention)
	if w.RollbackAttempts != 5 || !slices.Equal(w.Changed(), []string{"a", "b"}) {
		t.Fatalf("attempts %d, still changed %v", w.RollbackAttempts, w.Changed())
	}
	if got := testutil.ToFloat64(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "perfagent_workflow_instances_changed" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	})); got != 2 {
		t.Fatalf("perfagent_workflow_instances_changed = %v, want 2", got)
	}
	var alerted bool
	for _, a := range am.all() {
		if a.Labels["alertname"] == AlertNeedsAttention && a.Annotations["still_changed"] == "a, b" && strings.Contains(a.Annotations["summary"], "still changed: a, b") {
			alerted = true
		}
	}
	if !alerted {
		t.Fatalf("no %s alert naming a and b: %+v", AlertNeedsAttention, am.all())
	}

	if _, err := c.Abort(ctx, "wf-1", "carol", "give up", at); !errors.Is(err, ErrInvalidTransition) || !strings.Contains(err.Error(), "still changed") {
		t.Fatalf("abort with instances still changed: err = %v", err)
	}
	for _, tc := range []struct {
		inst, user, reason string
		want               error
	}{
		{"a", "mallory", "fixed", ErrNotApprover},
		{"a", "carol", " ", ErrInvalidChange},
		{"z", "carol", "fixed", ErrInstanceNotChanged},
	} {
		if _, err := c.Resolve(ctx, "wf-1", tc.inst, tc.user, tc.reason, at); !errors.Is(err, tc.want) {
			t.Fatalf("resolve %s by %s: err = %v, want %v", tc.inst, tc.user, err, tc.want)
		}
	}
	w, err := c.Resolve(ctx, "wf-1", "a", "carol", "restarted a with the old flag", at)
	if err != nil || w.State != StateNeedsAttention || !slices.Equal(w.Changed(), []string{"b"}) {
		t.Fatalf("after resolving a: %s, still changed %v, %v", w.State, w.Changed(), err)
	}
	w, err = c.Resolve(ctx, "wf-1", "b", "alice", "redeployed b", at)
	if err != nil || w.State != StateRolledBack || len(w.Changed()) != 0 {
		t.Fatalf("after resolving b: %s, %v", w.State, err)
	}
	if r := w.Instances[0].Resolved; r == nil || r.User != "carol" || r.Reason != "restarted a with the old flag" {
		t.Fatalf("resolution of a: %+v", r)
	}
	// The pool is free again.
	create(t, c, "wf-2", pool, nil, at)
}

func TestControllerCanaryRestart(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	restarting := func(signal, inst string, s, e time.Time) ([]float64, error) {
		if signal == "llm_engine_restarts" && inst == "a" {
			return []float64{1}, nil
		}
		return healthy(signal, inst, s, e)
	}
	c := newTestController(t, store, &fakeSource{rangeFn: restarting}, newFakeExecutor(), nil, nil)
	start(t, c, []string{"a", "b"}, currentOf([]string{"a", "b"}))
	w, _ := tickUntil(t, c, "wf-1", t0, StatePaused, StateSucceeded, StateRolledBack)
	if p := eventPath(w); p != "awaiting_approval>preflight>applying>warmup>analysing>warmup>analysing>paused" {
		t.Fatalf("path %s: a restart must start the window again once, then pause", p)
	}
	for _, r := range w.Results {
		if !slices.Equal(r.Restarted, []string{"a"}) || r.Verdict != VerdictInconclusive || !strings.Contains(r.Reason, "restarted") {
			t.Fatalf("result %+v", r)
		}
	}
	if w.Events[5].Type != EventCanaryRestarted {
		t.Fatalf("event %+v", w.Events[5])
	}
}

func TestValidatePeersNotComparable(t *testing.T) {
	// Before the change the canary was already 40 % slower than its peers:
	// a faster canary afterwards says nothing about the change.
	slowBefore := func(signal, inst string, s, e time.Time) ([]float64, error) {
		v, _ := healthy(signal, inst, s, e)
		if signal == "llm_time_to_first_token_seconds" && inst == "c1" && s.Before(t0) {
			for i := range v {
				v[i] *= 1.4
			}
		}
		return v, nil
	}
	v := NewValidator(ValidatorOptions{Source: &fakeSource{rangeFn: slowBefore}})
	r := v.Validate(context.Background(), Comparison{
		Stage: "stage-1", Engine: "vllm", Model: "m", Canary: []string{"c1"}, Peers: []string{"p1", "p2"},
		Start: t0.Add(5 * time.Minute), End: t0.Add(20 * time.Minute), PreStart: t0.Add(-15 * time.Minute), PreEnd: t0,
		Metrics: MetricsFor(testChange),
	}, t0.Add(21*time.Minute))
	if !r.PreChange || !slices.Equal(r.Baseline, []string{"c1"}) || !r.BaselineEnd.Equal(t0) {
		t.Fatalf("baseline %v pre-change %v: want the canary's own window before the change", r.Baseline, r.PreChange)
	}
	if !strings.Contains(r.NotComparable, "llm_time_to_first_token_seconds") || !strings.Contains(r.Basis, "not comparable") {
		t.Fatalf("not comparable %q, basis %q", r.NotComparable, r.Basis)
	}
	ttft := r.Metrics[0]
	if ttft.PreChange == nil || ttft.PreChange.Comparable || ttft.PreChange.CanaryMean <= ttft.PreChange.BaselineMean {
		t.Fatalf("pre-change gap of the target: %+v", ttft.PreChange)
	}
	if ttft.BaselineMean != ttft.PreChange.CanaryMean {
		t.Fatalf("the target was judged against %v, not the canary's own mean before the change %v", ttft.BaselineMean, ttft.PreChange.CanaryMean)
	}

	// With peers that matched before the change, they are the baseline.
	v = NewValidator(ValidatorOptions{Source: &fakeSource{rangeFn: healthy}})
	r = v.Validate(context.Background(), Comparison{
		Stage: "stage-1", Engine: "vllm", Model: "m", Canary: []string{"c1"}, Peers: []string{"p1", "p2"},
		Start: t0.Add(5 * time.Minute), End: t0.Add(20 * time.Minute), PreStart: t0.Add(-15 * time.Minute), PreEnd: t0,
		Metrics: MetricsFor(testChange),
	}, t0.Add(21*time.Minute))
	if r.PreChange || !slices.Equal(r.Baseline, []string{"p1", "p2"}) || r.NotComparable != "" || !r.Metrics[0].PreChange.Comparable {
		t.Fatalf("comparable peers: baseline %v, pre-change %v, %q", r.Baseline, r.PreChange, r.NotComparable)
	}
}

func TestSettingsJSON(t *testing.T) {
	s := Settings{ApprovalTTL: 24 * time.Hour, PauseTTL: time.Hour, Warmup: 90 * time.Second, Window: 15 * time.Minute}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"approval_ttl":"1d","pause_ttl":"1h","warmup":"1m30s","window":"15m"}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	for _, in := range []string{string(b), `{"approval_ttl":86400000000000,"pause_ttl":3600000000000,"warmup":90000000000,"window":900000000000}`} {
		var got Settings
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != s {
			t.Fatalf("unmarshal %s: %+v, %v", in, got, err)
		}
	}
	var bad Settings
	if err := json.Unmarshal([]byte(`{"warmup":"soon"}`), &bad); err == nil {
		t.Fatal("a bad duration was accepted")
	}
}

func TestSameValue(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"0.9", "0.90", true}, {"256", "256.0", true}, {"True", "true", true}, {"auto", "auto", true},
		{"0.9", "0.95", false}, {"true", "1.5", false}, {"auto", "fp8", false}, {"", "0", false},
	} {
		if got := SameValue(tc.a, tc.b); got != tc.want {
			t.Errorf("SameValue(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
