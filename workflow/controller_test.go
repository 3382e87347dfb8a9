package workflow

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/shard"
)

// fakeExecutor counts calls per idempotency key and applies each key once,
// as a real executor de-duplicating on the key would.
type fakeExecutor struct {
	mu      sync.Mutex
	calls   map[string]int
	applied map[string]int
	value   map[string]string
	order   []string
	fail    func(r Request) error
	// crash, when it returns true for a call, applies the request and
	// then cancels the caller's context, like a process killed right after
	// the executor acted.
	crash  func(n int, r Request) bool
	cancel context.CancelFunc
}

func newFakeExecutor() *fakeExecutor {
	return &fakeExecutor{calls: map[string]int{}, applied: map[string]int{}, value: map[string]string{}}
}

func (f *fakeExecutor) Execute(ctx context.Context, r Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[r.IdempotencyKey]++
	f.order = append(f.order, r.IdempotencyKey)
	if f.fail != nil {
		if err := f.fail(r); err != nil {
			return err
		}
	}
	if f.applied[r.IdempotencyKey] == 0 {
		f.value[r.Instance] = r.To
	}
	f.applied[r.IdempotencyKey]++
	if f.crash != nil && f.crash(len(f.order), r) && f.cancel != nil {
		f.cancel()
		return ctx.Err()
	}
	return nil
}

var testChange = Change{
	RecommendationID: "rec-7", Engine: "vllm", Model: "llama", Kind: "batching", Flag: "max-num-seqs", From: "256", To: "128",
	Targets: []Target{{Signal: "llm_time_to_first_token_seconds", Quantile: "0.95", Expected: DirectionDecrease}},
	Risk:    "throughput may drop", Evidence: "queue time p95 4.2s for 20m",
}

var testApprovers = []string{"alice", "bob", "carol"}

func newTestController(t *testing.T, store Store, src *fakeSource, exec Executor, alerts AlertSink, m *Metrics) *Controller {
	t.Helper()
	c, err := NewController(ControllerOptions{
		Store: store, Source: src, Executor: exec, Alerts: alerts, Approvers: testApprovers,
		ExternalURL: "http://agent.example:9090/", AgentName: "agent-1", Metrics: m,
		Defaults: Settings{ApprovalTTL: time.Hour, PauseTTL: 30 * time.Minute, Warmup: time.Minute, Window: 2 * time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// currentOf says every instance has testChange.From, as the metrics would.
func currentOf(pool []string) []CurrentValue {
	out := make([]CurrentValue, len(pool))
	for i, inst := range pool {
		out[i] = CurrentValue{Instance: inst, Value: testChange.From, Source: "metrics"}
	}
	return out
}

func create(t *testing.T, c *Controller, id string, pool []string, stages []Stage, now time.Time) Workflow {
	t.Helper()
	w, err := c.Create(context.Background(), CreateRequest{ID: id, Change: testChange, Pool: pool, Current: currentOf(pool), Stages: stages, Requester: "bob"}, now)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// tickUntil ticks every minute from `from` until the workflow reaches one
// of the states, and returns it and the time of the last tick.
func tickUntil(t *testing.T, c *Controller, id string, from time.Time, states ...State) (Workflow, time.Time) {
	t.Helper()
	now := from
	for range 200 {
		if err := c.Tick(context.Background(), now); err != nil {
			t.Fatalf("Tick at %v: %v", now.Sub(t0), err)
		}
		w, err := c.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(states, w.State) {
			return w, now
		}
		now = now.Add(time.Minute)
	}
	w, _ := c.Get(context.Background(), id)
	t.Fatalf("workflow still %s after 200 ticks; events %+v", w.State, w.Events)
	return w, now
}

func eventPath(w Workflow) string {
	var p []string
	for _, ev := range w.Events {
		p = append(p, ev.To.String())
	}
	return strings.Join(p, ">")
}

func TestControllerSucceeds(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	am := &recordingSink{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	src, exec := &fakeSource{rangeFn: healthy}, newFakeExecutor()
	c := newTestController(t, store, src, exec, am, m)
	ctx := context.Background()

	pool := []string{"a", "b", "c", "d"}
	w := create(t, c, "wf-1", pool, nil, t0)
	if w.State != StateAwaitingApproval || w.ProposalHash != ProposalHash(testChange, pool, currentOf(pool), DefaultStages(pool)) {
		t.Fatalf("created %s with hash %s", w.State, w.ProposalHash)
	}
	if _, err := c.Create(ctx, CreateRequest{Change: testChange, Pool: []string{"d", "e"}, Current: currentOf([]string{"d", "e"}), Requester: "carol"}, t0); !errors.Is(err, ErrConflict) {
		t.Fatalf("second workflow on d: err = %v, want ErrConflict", err)
	}

	// The approval alert fires with identity labels and the workflow link.
	got := am.all()
	if len(got) != 1 {
		t.Fatalf("%d alerts posted, want the approval request", len(got))
	}
	a := got[0]
	wantLabels := map[string]string{
		"alertname": AlertApprovalRequired, "severity": "warning", "agent": "agent-1", "workflow_id": "wf-1",
		"gate": "start", "model": "llama", "engine": "vllm", "change_kind": "batching",
	}
	if !maps.Equal(a.Labels, wantLabels) {
		t.Fatalf("labels %v, want %v", a.Labels, wantLabels)
	}
	for k, want := range map[string]string{
		"workflow_url": "http://agent.example:9090/workflows/wf-1", "proposal_hash": w.ProposalHash,
		"expires_at": t0.Add(time.Hour).Format(time.RFC3339),
	} {
		if a.Annotations[k] != want {
			t.Fatalf("annotation %s = %q, want %q", k, a.Annotations[k], want)
		}
	}
	for _, part := range []string{"set max-num-seqs to 128 on 4 instance(s)", "now a has 256, b has 256", "Evidence: queue time p95", "Risk: throughput", "should decrease", "Rollback plan: set max-num-seqs back to the value each changed instance had"} {
		if !strings.Contains(a.Annotations["description"], part) {
			t.Fatalf("description lacks %q:\n%s", part, a.Annotations["description"])
		}
	}
	if !a.StartsAt.Equal(t0) || !a.EndsAt.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("startsAt %v endsAt %v", a.StartsAt, a.EndsAt)
	}

	// Resent while pending, with EndsAt moved on; not before the interval.
	if err := c.Tick(ctx, t0.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(am.all()); n != 1 {
		t.Fatalf("resent before the interval: %d posts", n)
	}
	if err := c.Tick(ctx, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := am.all(); len(got) != 2 || !got[1].EndsAt.Equal(t0.Add(5*time.Minute)) || !got[1].StartsAt.Equal(t0) {
		t.Fatalf("resend: %+v", got)
	}

	// Decisions.
	decideAt := t0.Add(2 * time.Minute)
	for _, tc := range []struct {
		name, id, user, hash string
		want                 error
	}{
		{"no user", "wf-1", "", w.ProposalHash, ErrUnauthenticated},
		{"not an approver", "wf-1", "mallory", w.ProposalHash, ErrNotApprover},
		{"requester", "wf-1", "bob", w.ProposalHash, ErrSelfApproval},
		{"stale hash", "wf-1", "alice", "deadbeef", ErrProposalMismatch},
		{"unknown workflow", "wf-9", "alice", w.ProposalHash, ErrNotFound},
	} {
		if _, err := c.Approve(ctx, tc.id, tc.user, tc.hash, "", decideAt); !errors.Is(err, tc.want) {
			t.Fatalf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	w, err := c.Approve(ctx, "wf-1", "alice", w.ProposalHash, "go", decideAt)
	if err != nil || w.State != StatePreflight {
		t.Fatalf("approve: %s, %v", w.State, err)
	}
	again, err := c.Approve(ctx, "wf-1", "alice", w.ProposalHash, "go", decideAt.Add(time.Second))
	if err != nil || again.Version != w.Version || len(again.Events) != len(w.Events) {
		t.Fatalf("second approval changed the workflow: %v, version %d -> %d", err, w.Version, again.Version)
	}
	if _, err := c.Reject(ctx, "wf-1", "carol", w.ProposalHash, "no", decideAt); !errors.Is(err, ErrAlreadyDecided) {
		t.Fatalf("reject after approve: err = %v", err)
	}
	if d := w.Decisions; len(d) != 1 || d[0].User != "alice" || !d[0].Approved || d[0].Comment != "go" || d[0].ProposalHash != w.ProposalHash {
		t.Fatalf("decisions %+v", d)
	}
	// The decision resolved the alert at the decision time.
	got = am.all()
	if last := got[len(got)-1]; !last.EndsAt.Equal(decideAt) || last.Labels["gate"] != "start" {
		t.Fatalf("resolve: %+v", last)
	}

	w, _ = tickUntil(t, c, "wf-1", decideAt, StateSucceeded, StateRolledBack, StatePaused)
	if w.State != StateSucceeded {
		t.Fatalf("ended %s: %s; results %+v", w.State, eventPath(w), w.Results)
	}
	// Every instance was changed and validated in a stage: nothing is
	// left to promote, so there is no separate verification.
	wantPath := "awaiting_approval>preflight>applying>warmup>analysing>applying>warmup>analysing>applying>warmup>analysing>promoting>succeeded"
	if p := eventPath(w); p != wantPath {
		t.Fatalf("path %s, want %s", p, wantPath)
	}
	for i, ev := range w.Events {
		if ev.Seq != i+1 || ev.Time.IsZero() || ev.Actor == "" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if len(w.Results) != 3 || w.Results[0].PreChange || len(w.Results[0].Metrics) != 5 {
		t.Fatalf("results: %+v", w.Results)
	}
	if want := []string{"a"}; !slices.Equal(w.Results[0].Canary, want) || !slices.Equal(w.Results[0].Baseline, []string{"b", "c", "d"}) {
		t.Fatalf("stage-1 compared %v against %v", w.Results[0].Canary, w.Results[0].Baseline)
	}
	// The last stage has no untouched instance: the pre-change window of the
	// same instances is the baseline.
	if r := w.Results[2]; !r.PreChange || !r.BaselineEnd.Equal(w.ChangeStartedAt) {
		t.Fatalf("stage-3 baseline: %+v", r)
	}
	for _, inst := range pool {
		if exec.value[inst] != "128" {
			t.Fatalf("%s = %s", inst, exec.value[inst])
		}
	}
	for k, n := range exec.calls {
		if n != 1 {
			t.Fatalf("key %s called %d times", k, n)
		}
	}
	if len(exec.calls) != 4 {
		t.Fatalf("%d executor keys, want 4: %v", len(exec.calls), exec.order)
	}
	if got := testutil.ToFloat64(m.Transitions.WithLabelValues("promoting", "succeeded")); got != 1 {
		t.Fatalf("transitions promoting->succeeded = %v", got)
	}
	if got := testutil.ToFloat64(m.Validations.WithLabelValues("pass")); got != 3 {
		t.Fatalf("passed validations = %v", got)
	}
	// The pool is free again.
	create(t, c, "wf-2", []string{"d", "e"}, nil, t0.Add(3*time.Hour))
}

func TestControllerRegressionRollsBack(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	am := &recordingSink{}
	slow := func(signal, inst string, s, e time.Time) ([]float64, error) {
		v, _ := healthy(signal, inst, s, e)
		// Slower after the change only: before it, a matched its peers.
		if signal == "llm_time_to_first_token_seconds" && inst == "a" && !s.Before(t0) {
			for i := range v {
				v[i] *= 1.3
			}
		}
		return v, nil
	}
	exec := newFakeExecutor()
	c := newTestController(t, store, &fakeSource{rangeFn: slow}, exec, am, nil)
	w := create(t, c, "wf-1", []string{"a", "b", "c"}, nil, t0)
	if _, err := c.Approve(context.Background(), "wf-1", "alice", w.ProposalHash, "", t0); err != nil {
		t.Fatal(err)
	}
	w, _ = tickUntil(t, c, "wf-1", t0, StateRolledBack, StateSucceeded)
	if w.State != StateRolledBack {
		t.Fatalf("ended %s", w.State)
	}
	if p := eventPath(w); p != "awaiting_approval>preflight>applying>warmup>analysing>rolling_back>rolled_back" {
		t.Fatalf("path %s", p)
	}
	if exec.value["a"] != "256" || exec.calls["wf-1/stage-1/a/rollback"] != 1 || len(exec.calls) != 2 {
		t.Fatalf("executor: values %v calls %v", exec.value, exec.calls)
	}
	r := w.Results[0]
	if r.Verdict != VerdictFail || !strings.Contains(r.Reason, "llm_time_to_first_token_seconds") {
		t.Fatalf("result %+v", r)
	}
	var failed bool
	for _, a := range am.all() {
		if a.Labels["alertname"] == AlertRolloutFailed && a.Labels["severity"] == "warning" && strings.Contains(a.Annotations["stage_result"], "fail") {
			failed = true
		}
	}
	if !failed {
		t.Fatalf("no %s alert: %+v", AlertRolloutFailed, am.all())
	}
}

func TestControllerInconclusivePausesThenExpires(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	quiet := func(signal, inst string, s, e time.Time) ([]float64, error) {
		if inst == "a" && signal == "llm_inter_token_latency_seconds" {
			return nil, nil
		}
		return healthy(signal, inst, s, e)
	}
	exec := newFakeExecutor()
	c := newTestController(t, store, &fakeSource{rangeFn: quiet}, exec, nil, nil)
	w := create(t, c, "wf-1", []string{"a", "b", "c"}, nil, t0)
	if _, err := c.Approve(context.Background(), "wf-1", "alice", w.ProposalHash, "", t0); err != nil {
		t.Fatal(err)
	}
	w, at := tickUntil(t, c, "wf-1", t0, StatePaused, StateSucceeded, StateRolledBack)
	if w.State != StatePaused || w.PausedFrom != StateAnalysing {
		t.Fatalf("state %s from %s, want paused (no data is never a pass)", w.State, w.PausedFrom)
	}
	g, ok := w.OpenGate()
	if !ok || g.Name != "inconclusive-stage-1" || !g.ExpiresAt.Equal(at.Add(30*time.Minute)) {
		t.Fatalf("gate %+v", g)
	}
	w, _ = tickUntil(t, c, "wf-1", at.Add(time.Minute), StateRolledBack, StateRollingBack)
	if w.State != StateRolledBack || exec.value["a"] != "256" {
		t.Fatalf("after the pause TTL: %s, a=%s", eventPath(w), exec.value["a"])
	}
	if ev := w.Events[len(w.Events)-2]; ev.Type != EventExpire || !strings.Contains(ev.Reason, "expired") {
		t.Fatalf("expiry event %+v", ev)
	}
}

func TestControllerQueryErrorsPauseAfterBudget(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	var down bool
	var mu sync.Mutex
	src := &fakeSource{rangeFn: func(signal, inst string, s, e time.Time) ([]float64, error) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return nil, errors.New("connection refused")
		}
		return healthy(signal, inst, s, e)
	}}
	m := NewMetrics(nil)
	c := newTestController(t, store, src, newFakeExecutor(), nil, m)
	w := create(t, c, "wf-1", []string{"a", "b"}, nil, t0)
	if _, err := c.Approve(context.Background(), "wf-1", "alice", w.ProposalHash, "", t0); err != nil {
		t.Fatal(err)
	}
	_, at := tickUntil(t, c, "wf-1", t0, StateAnalysing)
	mu.Lock()
	down = true
	mu.Unlock()
	// Errors are retried, not judged: the workflow stays in analysis until
	// the error budget (10m) and count (4) are spent.
	w, _ = tickUntil(t, c, "wf-1", at, StatePaused, StateRollingBack, StateApplying)
	if w.State != StatePaused || w.ErrorTicks != 0 {
		t.Fatalf("state %s", w.State)
	}
	first := w.Events[len(w.Events)-2].Time
	if paused := w.Events[len(w.Events)-1].Time; paused.Sub(first) < 10*time.Minute {
		t.Fatalf("paused %v after analysis started, before the error budget", paused.Sub(first))
	}
	if got := testutil.ToFloat64(m.Validations.WithLabelValues("error")); got < 4 {
		t.Fatalf("error validations = %v", got)
	}
	if r := w.Results[len(w.Results)-1]; r.Verdict != VerdictInconclusive || !r.QueryFailed() {
		t.Fatalf("stored result %+v", r)
	}
}

func TestControllerRollbackFailureNeedsAttention(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	exec := newFakeExecutor()
	broken := true
	exec.fail = func(r Request) error {
		if r.Operation == OperationRollback && broken {
			return errors.New("instance does not start")
		}
		return nil
	}
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, exec, nil, nil)
	ctx := context.Background()
	w := create(t, c, "wf-1", []string{"a", "b", "c"}, nil, t0)
	if _, err := c.Approve(ctx, "wf-1", "alice", w.ProposalHash, "", t0); err != nil {
		t.Fatal(err)
	}
	_, at := tickUntil(t, c, "wf-1", t0, StateWarmup)
	if _, err := c.Abort(ctx, "wf-1", "mallory", "stop", at); !errors.Is(err, ErrNotApprover) {
		t.Fatalf("abort by a stranger: err = %v", err)
	}
	if _, err := c.Rollback(ctx, "wf-1", "carol", "looks wrong", at); err != nil {
		t.Fatal(err)
	}
	w, at = tickUntil(t, c, "wf-1", at, StateNeedsAttention, StateRolledBack)
	if w.State != StateNeedsAttention {
		t.Fatalf("state %s", w.State)
	}
	if _, err := c.Create(ctx, CreateRequest{Change: testChange, Pool: []string{"a"}, Current: currentOf([]string{"a"}), Requester: "bob"}, at); !errors.Is(err, ErrConflict) {
		t.Fatalf("needs attention must keep the pool frozen: err = %v", err)
	}
	broken = false
	if _, err := c.Rollback(ctx, "wf-1", "carol", "fixed the host", at); err != nil {
		t.Fatal(err)
	}
	w, _ = tickUntil(t, c, "wf-1", at, StateRolledBack)
	if exec.calls["wf-1/stage-1/a/rollback"] != 1 || exec.calls["wf-1/stage-1/a/rollback-2"] != 1 || exec.value["a"] != "256" {
		t.Fatalf("rollback calls %v", exec.calls)
	}
	if p := eventPath(w); !strings.HasSuffix(p, "warmup>rolling_back>needs_attention>rolling_back>rolled_back") {
		t.Fatalf("path %s", p)
	}
}

func TestControllerRejectExpireCancel(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, newFakeExecutor(), nil, nil)
	ctx := context.Background()
	w := create(t, c, "wf-1", []string{"a"}, nil, t0)
	if w, err := c.Reject(ctx, "wf-1", "carol", w.ProposalHash, "not now", t0); err != nil || w.State != StateRejected {
		t.Fatalf("reject: %v %v", w.State, err)
	}
	if _, err := c.Approve(ctx, "wf-1", "alice", w.ProposalHash, "", t0); !errors.Is(err, ErrAlreadyDecided) {
		t.Fatalf("approve after reject: err = %v", err)
	}
	create(t, c, "wf-2", []string{"a"}, nil, t0)
	w, _ = tickUntil(t, c, "wf-2", t0.Add(59*time.Minute), StateExpired)
	if _, err := c.Approve(ctx, "wf-2", "alice", w.ProposalHash, "", t0.Add(2*time.Hour)); !errors.Is(err, ErrNoOpenGate) {
		t.Fatalf("approve after expiry: err = %v", err)
	}
	create(t, c, "wf-3", []string{"a"}, nil, t0)
	if w, err := c.Cancel(ctx, "wf-3", "recommender", "bottleneck gone", t0); err != nil || w.State != StateCancelled {
		t.Fatalf("cancel: %v %v", w.State, err)
	}
	w, err := c.Create(ctx, CreateRequest{Change: testChange, Pool: []string{"z"}, Current: currentOf([]string{"z"}), Requester: "bob", Settings: &Settings{Window: time.Hour, PromoteGate: true}}, t0)
	if err != nil || w.Settings.Window != time.Hour || !w.Settings.PromoteGate || w.Settings.Warmup != time.Minute || w.Settings.ApprovalTTL != time.Hour {
		t.Fatalf("partial settings: %+v, %v", w.Settings, err)
	}
	for _, bad := range []CreateRequest{
		{Change: testChange, Pool: []string{"y"}, Requester: "bob", Settings: &Settings{Warmup: -time.Minute}},
		{Change: testChange, Pool: []string{"x"}},
		{Change: Change{Engine: "vllm", Model: "m", Flag: "f", From: "1", To: "1"}, Pool: []string{"x"}, Current: []CurrentValue{{Instance: "x", Value: "1"}}, Requester: "bob"},
		{Change: testChange, Requester: "bob"},
		{Change: testChange, Pool: []string{"x", "x"}, Requester: "bob"},
		{Change: testChange, Pool: []string{"x"}, Stages: []Stage{{Name: "s", Instances: []string{"y"}}}, Requester: "bob"},
		{Change: Change{Engine: "vllm", Model: "m", Flag: "f", From: "1", To: "2", Targets: []Target{{Signal: "s", Expected: "up"}}}, Pool: []string{"x"}, Requester: "bob"},
	} {
		if _, err := c.Create(ctx, bad, t0); !errors.Is(err, ErrInvalidChange) {
			t.Fatalf("Create(%+v): err = %v, want ErrInvalidChange", bad, err)
		}
	}
}

func TestControllerApprovalRace(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, newFakeExecutor(), nil, nil)
	w := create(t, c, "wf-1", []string{"a"}, nil, t0)
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				_, results[i] = c.Approve(context.Background(), "wf-1", "alice", w.ProposalHash, "", t0)
			} else {
				_, results[i] = c.Reject(context.Background(), "wf-1", "carol", w.ProposalHash, "", t0)
			}
		}()
	}
	wg.Wait()
	w, _ = c.Get(context.Background(), "wf-1")
	if len(w.Decisions) != 1 || len(w.Events) != 2 {
		t.Fatalf("%d decisions, %d events after the race", len(w.Decisions), len(w.Events))
	}
	winner := w.Decisions[0].Approved
	for i, err := range results {
		if (i%2 == 0) == winner {
			if err != nil {
				t.Fatalf("the winning side got %v", err)
			}
		} else if !errors.Is(err, ErrAlreadyDecided) {
			t.Fatalf("the losing side got %v", err)
		}
	}
}

func TestControllerPreflight(t *testing.T) {
	cases := []struct {
		name   string
		query  func(expr string) (promql.Vector, error)
		reason string
	}{
		{"no series", func(expr string) (promql.Vector, error) {
			if strings.HasPrefix(expr, "count(llm_inter_token_latency_seconds{") {
				return nil, nil
			}
			return promql.Vector{{F: 1}}, nil
		}, `no series for llm_inter_token_latency_seconds{quantile="0.95"} in the pool`},
		{"source down beyond the budget", func(string) (promql.Vector, error) {
			return nil, errors.New("connection refused")
		}, "metrics source unavailable: connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t, t.TempDir())
			defer store.Close()
			src := &fakeSource{rangeFn: healthy, queryFn: tc.query}
			exec := newFakeExecutor()
			c := newTestController(t, store, src, exec, nil, nil)
			w := create(t, c, "wf-1", []string{"a", "b"}, nil, t0)
			if _, err := c.Approve(context.Background(), "wf-1", "alice", w.ProposalHash, "", t0); err != nil {
				t.Fatal(err)
			}
			w, _ = tickUntil(t, c, "wf-1", t0, StateAborted, StateApplying, StateWarmup)
			if w.State != StateAborted || len(exec.calls) != 0 {
				t.Fatalf("state %s, executor calls %v", w.State, exec.calls)
			}
			if got := w.Events[len(w.Events)-1].Reason; got != tc.reason {
				t.Fatalf("reason %q, want %q", got, tc.reason)
			}
			if !slices.Contains(src.exprs, `count(llm_request_error_ratio{engine="vllm",model="llama",instance=~"a|b"})`) && tc.name == "no series" {
				t.Fatalf("preflight queries %v", src.exprs)
			}
		})
	}
}

func TestControllerStageGate(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, newFakeExecutor(), nil, nil)
	ctx := context.Background()
	pool := []string{"a", "b", "c"}
	stages := DefaultStages(pool)
	stages[1].Gate = true
	w := create(t, c, "wf-1", pool, stages, t0)
	if _, err := c.Approve(ctx, "wf-1", "alice", w.ProposalHash, "", t0); err != nil {
		t.Fatal(err)
	}
	w, at := tickUntil(t, c, "wf-1", t0, StateStageGate)
	if g, ok := w.OpenGate(); !ok || g.Name != "stage-2" {
		t.Fatalf("open gate %+v", g)
	}
	// A late repeat of the start approval does not decide stage-2.
	late, err := c.Decide(ctx, "wf-1", Decision{Gate: "start", User: "alice", Approved: true, ProposalHash: w.ProposalHash}, at)
	if err != nil || late.State != StateStageGate || late.Version != w.Version {
		t.Fatalf("late start approval: %s, %v", late.State, err)
	}
	if _, err := c.Decide(ctx, "wf-1", Decision{Gate: "start", User: "carol", Approved: false, ProposalHash: w.ProposalHash}, at); !errors.Is(err, ErrAlreadyDecided) {
		t.Fatalf("late start rejection: err = %v", err)
	}
	if _, err := c.Decide(ctx, "wf-1", Decision{Gate: "stage-3", User: "carol", Approved: true, ProposalHash: w.ProposalHash}, at); !errors.Is(err, ErrNoOpenGate) {
		t.Fatalf("decision on a gate that is not open: err = %v", err)
	}
	w, err = c.Decide(ctx, "wf-1", Decision{Gate: "stage-2", User: "carol", Approved: true, ProposalHash: w.ProposalHash, Comment: "canary fine"}, at)
	if err != nil || w.State != StateApplying || w.Stage != 1 {
		t.Fatalf("stage-2 approval: %s stage %d, %v", w.State, w.Stage, err)
	}
	if d := w.Decisions[len(w.Decisions)-1]; d.Gate != "stage-2" || d.User != "carol" || !d.Time.Equal(at) {
		t.Fatalf("decision %+v", d)
	}
	w, _ = tickUntil(t, c, "wf-1", at, StateSucceeded)
	if len(w.Decisions) != 2 || len(w.Gates) != 2 {
		t.Fatalf("decisions %+v gates %+v", w.Decisions, w.Gates)
	}
}

func TestControllerGuardrail(t *testing.T) {
	cases := []struct {
		name     string
		canary   []float64 // error ratio of the canary on successive ticks
		baseline float64
		want     State
	}{
		{"sustained breach rolls back", []float64{0.10, 0.10, 0.10}, 0.01, StateRolledBack},
		{"breach interrupted", []float64{0.10, 0.10, 0.01, 0.10, 0.10}, 0.01, StateAnalysing},
		{"high but like the baseline", []float64{0.05, 0.05, 0.05, 0.05}, 0.045, StateAnalysing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t, t.TempDir())
			defer store.Close()
			tick := -1 // healthy until the loop below
			var mu sync.Mutex
			src := &fakeSource{rangeFn: healthy, queryFn: func(expr string) (promql.Vector, error) {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case strings.HasPrefix(expr, `avg(llm_request_error_ratio{engine="vllm",model="llama",instance=~"a"})`):
					if tick < 0 {
						return promql.Vector{{F: 0.01}}, nil
					}
					return promql.Vector{{F: tc.canary[min(tick, len(tc.canary)-1)]}}, nil
				case strings.HasPrefix(expr, "avg(llm_request_error_ratio{"):
					return promql.Vector{{F: tc.baseline}}, nil
				}
				return promql.Vector{{F: 1}}, nil
			}}
			exec := newFakeExecutor()
			c, err := NewController(ControllerOptions{
				Store: store, Source: src, Executor: exec, Approvers: testApprovers,
				Defaults: Settings{ApprovalTTL: time.Hour, PauseTTL: time.Hour, Warmup: 2 * time.Minute, Window: 10 * time.Minute},
			})
			if err != nil {
				t.Fatal(err)
			}
			w := create(t, c, "wf-1", []string{"a", "b", "c"}, nil, t0)
			if _, err := c.Approve(context.Background(), "wf-1", "alice", w.ProposalHash, "", t0); err != nil {
				t.Fatal(err)
			}
			_, at := tickUntil(t, c, "wf-1", t0, StateWarmup)
			for i := range tc.canary {
				mu.Lock()
				tick = i
				mu.Unlock()
				if err := c.Tick(context.Background(), at.Add(time.Duration(i+1)*time.Minute)); err != nil {
					t.Fatal(err)
				}
			}
			w, _ = c.Get(context.Background(), "wf-1")
			if w.State != tc.want {
				t.Fatalf("state %s, want %s: %s", w.State, tc.want, eventPath(w))
			}
			if tc.want == StateRolledBack {
				if ev := w.Events[len(w.Events)-2]; ev.Type != EventGuardrailBreached || !strings.Contains(ev.Reason, "error ratio 0.1000 above 0.0200 on 3 consecutive ticks") {
					t.Fatalf("event %+v", ev)
				}
			}
		})
	}
}

func TestControllerRun(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls int
	c, err := NewController(ControllerOptions{
		Store: store, Source: &fakeSource{rangeFn: healthy}, Executor: newFakeExecutor(), Approvers: testApprovers,
		TickInterval: time.Millisecond,
		// The first tick runs two days on; the second stops Run.
		Now: func() time.Time {
			if calls++; calls > 1 {
				cancel()
			}
			return t0.Add(48 * time.Hour)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	create(t, c, "wf-1", []string{"a"}, nil, t0)
	c.Run(ctx)
	if w, _ := c.Get(context.Background(), "wf-1"); w.State != StateExpired {
		t.Fatalf("state %s, want expired after the 24h default approval TTL", w.State)
	}
	if calls != 2 {
		t.Fatalf("Run read its clock %d times, want 2", calls)
	}
	if _, err := NewController(ControllerOptions{Store: store}); err == nil {
		t.Fatal("accepted a controller without source and executor")
	}
}

// TestApplyConfigReplacesReloadableOptions: new approvers and default
// settings apply to the next decision and the next workflow; a bad
// configuration changes nothing.
func TestApplyConfigReplacesReloadableOptions(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, newFakeExecutor(), nil, nil)
	ctx := context.Background()
	if err := c.ApplyConfig(Reloadable{Approvers: []string{"mallory"}}); err == nil {
		t.Fatal("a configuration without an executor was accepted")
	}
	w := create(t, c, "wf-before", []string{"a"}, nil, t0)
	if w.Settings.Window != 2*time.Minute {
		t.Fatalf("window before the reload = %v", w.Settings.Window)
	}
	if _, err := c.Approve(ctx, w.ID, "mallory", w.ProposalHash, "", t0); !errors.Is(err, ErrNotApprover) {
		t.Fatalf("mallory approved after a refused reload: %v", err)
	}

	if err := c.ApplyConfig(Reloadable{Executor: newFakeExecutor(), Approvers: []string{"mallory"}, Defaults: Settings{Window: 30 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(ctx, w.ID, "alice", w.ProposalHash, "", t0); !errors.Is(err, ErrNotApprover) {
		t.Errorf("alice, no longer an approver, approved: %v", err)
	}
	if _, err := c.Approve(ctx, w.ID, "mallory", w.ProposalHash, "", t0); err != nil {
		t.Errorf("mallory, now an approver, could not approve: %v", err)
	}
	if w := create(t, c, "wf-after", []string{"b"}, nil, t0); w.Settings.Window != 30*time.Minute || w.Settings.Warmup != DefaultSettings().Warmup {
		t.Errorf("settings after the reload = %+v, want the new 30m window and the default warm-up", w.Settings)
	}
}

// TestControllerOwnsOnlyItsShard: an agent of a split fleet refuses a
// workflow whose pool or baseline holds an instance of another shard, and
// names that instance's shard; a pool of its own instances is accepted.
func TestControllerOwnsOnlyItsShard(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	sh, err := shard.New(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	var mine, theirs []string
	for i := 0; len(mine) < 2 || len(theirs) < 1; i++ {
		inst := fmt.Sprintf("10.0.0.%d:8000", i)
		if sh.Owns(inst) {
			mine = append(mine, inst)
		} else {
			theirs = append(theirs, inst)
		}
	}
	c, err := NewController(ControllerOptions{Store: store, Source: &fakeSource{rangeFn: healthy}, Executor: newFakeExecutor(), Approvers: testApprovers, Shard: sh})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, r := range map[string]CreateRequest{
		"pool":     {Pool: []string{mine[0], theirs[0]}},
		"baseline": {Pool: mine[:1], Baseline: theirs[:1]},
	} {
		r.Change, r.Requester, r.Current = testChange, "bob", currentOf(r.Pool)
		_, err := c.Create(ctx, r, t0)
		want := fmt.Sprintf("this agent is shard 0 of 2 and owns no workflow on %s (shard 1)", theirs[0])
		if !errors.Is(err, ErrInvalidChange) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s of another shard: Create = %v, want ErrInvalidChange saying %q", name, err, want)
		}
	}
	if ws, _ := c.List(ctx, Filter{}); len(ws) != 0 {
		t.Fatalf("refused requests left %d workflows", len(ws))
	}
	create(t, c, "wf-mine", mine, nil, t0)
}
