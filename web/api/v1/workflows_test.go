package v1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signalstore"
	"github.com/optiinfra/perfagent/workflow"
)

type fixedRecommendations struct{ rep recommender.Report }

func (f fixedRecommendations) Latest() recommender.Report { return f.rep }

func (f fixedRecommendations) Recommend(context.Context, time.Time, RecommendRequest) (recommender.Report, error) {
	return f.rep, nil
}

// quietSource has every signal and no data: workflows wait in analysis.
type quietSource struct{}

func (quietSource) Query(context.Context, string, time.Time) (promql.Vector, error) {
	return promql.Vector{{F: 1}}, nil
}

func (quietSource) QueryRange(context.Context, string, time.Time, time.Time, time.Duration) (promql.Matrix, error) {
	return nil, nil
}

// brokenRollbacks applies changes and fails every rollback.
type brokenRollbacks struct{}

func (brokenRollbacks) Execute(_ context.Context, r workflow.Request) error {
	if r.Operation == workflow.OperationRollback {
		return errors.New("host unreachable")
	}
	return nil
}

// newWorkflowAPI serves the API over a real workflow controller whose
// rollbacks fail, with a lower_max_num_seqs recommendation for a:1 (whose
// max_num_seqs the configuration states) and b:1 (whose value nobody knows).
func newWorkflowAPI(t *testing.T) (http.Handler, *workflow.Controller, func(time.Time)) {
	t.Helper()
	api, r, c, setClock := workflowAPI(t)
	return validated(t, api, r), c, setClock
}

// workflowAPI is newWorkflowAPI's API, without the validation of every
// exchange; a rule manager without rules answers the bottleneck routes.
func workflowAPI(t testing.TB) (*API, http.Handler, *workflow.Controller, func(time.Time)) {
	t.Helper()
	store, err := workflow.OpenBoltStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	c, err := workflow.NewController(workflow.ControllerOptions{
		Store: store, Source: quietSource{}, Executor: brokenRollbacks{}, Approvers: []string{"bob"},
		Defaults:         workflow.Settings{Warmup: time.Minute, Window: time.Minute},
		RollbackAttempts: 2, RollbackBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(inst, current string) recommender.Recommendation {
		return recommender.Recommendation{ID: "lower_max_num_seqs", Instance: inst, Engine: "vllm", Model: "m",
			Action: recommender.Action{Kind: recommender.KindFlag, Flag: "--max-num-seqs", Setting: "max_num_seqs", Current: current, Proposed: "120"}}
	}
	snap := &collector.Snapshot{Time: now, Instances: []*collector.Instance{
		{Instance: "a:1", Engine: "vllm", Model: "m", Settings: collector.Settings{"max_num_seqs": {Value: "256", Source: collector.SettingFromConfig}}},
		{Instance: "b:1", Engine: "vllm", Model: "m", Settings: collector.Settings{}},
	}}
	clock := now
	api := New(Options{
		Collector: &fakeCollector{latest: snap}, History: &fakeHistory{},
		Recommendations: fixedRecommendations{recommender.Report{Recommendations: []recommender.Recommendation{rec("a:1", "256"), rec("b:1", "unknown")}}},
		Workflows:       c,
		Rules:           rulesOnStore(t),
		Authenticated: func(r *http.Request) (string, bool) {
			u, _, ok := r.BasicAuth()
			return u, ok
		},
		Now: func() time.Time { return clock },
	})
	r := mux.NewRouter()
	api.Register(r.PathPrefix("/api/v1").Subrouter())
	return api, r, c, func(t time.Time) { clock = t }
}

func doAs(t *testing.T, h http.Handler, user, method, path, body string) (int, envelope) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.SetBasicAuth(user, "pw")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var env envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("%s %s: %v\n%s", method, path, err, w.Body.String())
	}
	return w.Code, env
}

func TestCreateWorkflowRefusals(t *testing.T) {
	h, _, _ := newWorkflowAPI(t)
	for _, tc := range []struct {
		name, body string
		code       int
		errType    string
		msg        []string
	}{
		{"current value unknown", `{"recommendation":"lower_max_num_seqs","instance":"b:1"}`, 422, ErrUnprocessable,
			[]string{"current value of --max-num-seqs is unknown on b:1", "settings: {max_num_seqs:", "workflow.webhook.read"}},
		{"pool outside the recommendation", `{"recommendation":"lower_max_num_seqs","instance":"a:1","instances":["a:1","c:1"]}`, 400, ErrBadData,
			[]string{"instances: ", "c:1 has no current lower_max_num_seqs recommendation"}},
		{"unknown recommendation", `{"recommendation":"raise_max_num_seqs"}`, 404, ErrNotFound, []string{"no current recommendation"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, env := doAs(t, h, "alice", "POST", "/api/v1/workflows", tc.body)
			if code != tc.code || env.ErrorType != tc.errType {
				t.Fatalf("= %d %s %q, want %d %s", code, env.ErrorType, env.Error, tc.code, tc.errType)
			}
			for _, m := range tc.msg {
				if !strings.Contains(env.Error, m) {
					t.Errorf("error %q lacks %q", env.Error, m)
				}
			}
		})
	}
}

// TestCreateWorkflowRefusesOtherShards: an agent of a split fleet answers
// a proposal for an instance of another shard with 400 and that shard.
func TestCreateWorkflowRefusesOtherShards(t *testing.T) {
	api, r, _, _ := workflowAPI(t)
	h := validated(t, api, r)
	probe, err := shard.New(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	owner := probe.Of("a:1")
	const body = `{"recommendation":"lower_max_num_seqs","instance":"a:1"}`
	if api.o.Shard, err = shard.New(1-owner, 2); err != nil {
		t.Fatal(err)
	}
	code, env := doAs(t, h, "alice", "POST", "/api/v1/workflows", body)
	want := fmt.Sprintf("this agent is shard %d of 2 and owns no workflow on a:1 (shard %d)", 1-owner, owner)
	if code != 400 || env.ErrorType != ErrBadData || !strings.Contains(env.Error, want) {
		t.Fatalf("proposal on another shard = %d %s %q, want 400 %s saying %q", code, env.ErrorType, env.Error, ErrBadData, want)
	}
	if api.o.Shard, err = shard.New(owner, 2); err != nil {
		t.Fatal(err)
	}
	if code, env := doAs(t, h, "alice", "POST", "/api/v1/workflows", body); code != 200 {
		t.Fatalf("proposal on the agent's own shard = %d %q", code, env.Error)
	}
}

// TestWorkflowRollbackFailsThenResolved follows a workflow whose rollback
// fails over the API: the instance stays listed as changed until a person
// restores it and says so.
func TestWorkflowRollbackFailsThenResolved(t *testing.T) {
	h, c, setClock := newWorkflowAPI(t)
	w := proposeAsAlice(t, h)
	if len(w.Pool) != 1 || w.Current[0].Value != "256" || w.Settings.Warmup != time.Minute {
		t.Fatalf("created %+v", w)
	}
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/approve", `{"proposal_hash":"deadbeef"}`); code != 409 || strings.Contains(env.Error, w.ProposalHash) {
		t.Fatalf("wrong hash = %d %q: must be refused without revealing the right one", code, env.Error)
	}
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/approve", fmt.Sprintf(`{"proposal_hash":%q,"gate":"stage-2"}`, w.ProposalHash)); code != 409 || !strings.Contains(env.Error, "the open gate is start") {
		t.Fatalf("approving a closed gate = %d %q", code, env.Error)
	}
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/approve", fmt.Sprintf(`{"proposal_hash":%q}`, w.ProposalHash)); code != 200 {
		t.Fatalf("approve = %d %s", code, env.Error)
	}
	ctx := context.Background()
	at := now
	for range 3 {
		if err := c.Tick(ctx, at); err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Second)
	}
	setClock(at)
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/rollback", `{"reason":"undo"}`); code != 200 {
		t.Fatalf("rollback = %d %s", code, env.Error)
	}
	for range 5 {
		at = at.Add(10 * time.Second)
		if err := c.Tick(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	_, env := doAs(t, h, "alice", "GET", "/api/v1/workflows/"+w.ID, "")
	_ = json.Unmarshal(env.Data, &w)
	if w.State != workflow.StateNeedsAttention || len(w.StillChanged) != 1 || w.StillChanged[0] != "a:1" {
		t.Fatalf("after failed rollbacks: %s, still changed %v", w.State, w.StillChanged)
	}
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/abort", `{}`); code != 409 || !strings.Contains(env.Error, "still changed") {
		t.Fatalf("abort with a:1 still changed = %d %q", code, env.Error)
	}
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/instances/a:1/resolve", `{}`); code != 400 || !strings.HasPrefix(env.Error, "reason: ") {
		t.Fatalf("resolve without reason = %d %q", code, env.Error)
	}
	if code, env := doAs(t, h, "alice", "POST", "/api/v1/workflows/"+w.ID+"/instances/a:1/resolve", `{"reason":"x"}`); code != 403 {
		t.Fatalf("resolve by a non-approver = %d %q", code, env.Error)
	}
	code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/instances/a:1/resolve", `{"reason":"redeployed with --max-num-seqs 256"}`)
	if code != 200 {
		t.Fatalf("resolve = %d %s", code, env.Error)
	}
	_ = json.Unmarshal(env.Data, &w)
	if w.State != workflow.StateRolledBack || len(w.StillChanged) != 0 || !strings.Contains(string(env.Data), `"still_changed":[]`) {
		t.Fatalf("after resolve: %s %v", w.State, w.StillChanged)
	}
}

// TestWorkflowListRejectAbort lists workflows with filters, rejects one
// and aborts another after its approval.
func TestWorkflowListRejectAbort(t *testing.T) {
	h, _, _ := newWorkflowAPI(t)
	w := proposeAsAlice(t, h)
	code, env := doAs(t, h, "bob", "GET", "/api/v1/workflows?active=true&state=awaiting_approval&engine=vllm", "")
	if code != 200 || !strings.Contains(string(env.Data), w.ID) {
		t.Fatalf("list = %d %s", code, env.Data)
	}
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/reject", fmt.Sprintf(`{"proposal_hash":%q,"comment":"not now"}`, w.ProposalHash)); code != 200 || !strings.Contains(string(env.Data), `"state":"rejected"`) {
		t.Fatalf("reject = %d %s %s", code, env.Error, env.Data)
	}
	w = proposeAsAlice(t, h)
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/approve", fmt.Sprintf(`{"proposal_hash":%q}`, w.ProposalHash)); code != 200 {
		t.Fatalf("approve = %d %s", code, env.Error)
	}
	if code, env := doAs(t, h, "bob", "POST", "/api/v1/workflows/"+w.ID+"/abort", `{"reason":"changed my mind"}`); code != 200 {
		t.Fatalf("abort = %d %s", code, env.Error)
	}
	if code, env := doAs(t, h, "bob", "GET", "/api/v1/workflows?state=bogus", ""); code != 400 || !strings.Contains(env.Error, "state") {
		t.Errorf("bad state filter = %d %q", code, env.Error)
	}
}

// TestCrossSiteChangesRefused: a browser page of another site cannot
// change anything with the user's credentials; the agent's own pages and
// clients without browser headers can.
func TestCrossSiteChangesRefused(t *testing.T) {
	h, _, _ := newWorkflowAPI(t)
	body := `{"recommendation":"lower_max_num_seqs","instance":"a:1"}`
	for _, tc := range []struct {
		name    string
		headers map[string]string
		code    int
	}{
		{"another site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, http.StatusForbidden},
		{"another origin without fetch metadata", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"a sibling site", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"the agent's own page", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/api/v1/workflows", strings.NewReader(body))
			req.SetBasicAuth("alice", "")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.code {
				t.Errorf("= %d %s, want %d", w.Code, w.Body.String(), tc.code)
			}
		})
	}
}

// proposeAsAlice proposes the lower_max_num_seqs recommendation of a:1.
func proposeAsAlice(t *testing.T, h http.Handler) WorkflowView {
	t.Helper()
	code, env := doAs(t, h, "alice", "POST", "/api/v1/workflows", `{"recommendation":"lower_max_num_seqs","instance":"a:1"}`)
	if code != 200 {
		t.Fatalf("create = %d %s", code, env.Error)
	}
	if !strings.Contains(string(env.Data), `"warmup":"1m"`) {
		t.Errorf("settings' durations are not written as durations: %s", env.Data)
	}
	var w WorkflowView
	if err := json.Unmarshal(env.Data, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

// rulesOnStore is a rule manager without rules over an empty local TSDB.
func rulesOnStore(t testing.TB) *rules.Manager {
	t.Helper()
	s, err := signalstore.Open(signalstore.Options{Path: t.TempDir(), Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return rules.NewManager(rules.ManagerOptions{Queryable: s.DB(), Appendable: s.DB(), QueryFunc: s.QueryFunc()})
}
