package v1

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/workflow"
)

// Workflows is what the API needs of the workflow controller.
type Workflows interface {
	Create(ctx context.Context, r workflow.CreateRequest, now time.Time) (workflow.Workflow, error)
	Get(ctx context.Context, id string) (workflow.Workflow, error)
	List(ctx context.Context, f workflow.Filter) ([]workflow.Workflow, error)
	Approve(ctx context.Context, id, user, proposalHash, comment string, now time.Time) (workflow.Workflow, error)
	Reject(ctx context.Context, id, user, proposalHash, comment string, now time.Time) (workflow.Workflow, error)
	Decide(ctx context.Context, id string, d workflow.Decision, now time.Time) (workflow.Workflow, error)
	Abort(ctx context.Context, id, user, reason string, now time.Time) (workflow.Workflow, error)
	Rollback(ctx context.Context, id, user, reason string, now time.Time) (workflow.Workflow, error)
}

// CreateWorkflowRequest is the body of POST /api/v1/workflows.
type CreateWorkflowRequest struct {
	// Recommendation is the id of a current recommendation
	// (GET /api/v1/recommendations), e.g. raise_gpu_memory_utilization.
	Recommendation string `json:"recommendation"`
	// Instance picks the recommendation of this instance when several
	// share the id.
	Instance string `json:"instance,omitempty"`
	// Instances narrow the pool; by default it is every instance of the
	// recommendation's engine and model.
	Instances []string `json:"instances,omitempty"`
	// Stages replace the default stages (one canary, half, all).
	Stages []workflow.Stage `json:"stages,omitempty"`
}

// DecisionRequest is the body of the approve and reject endpoints.
type DecisionRequest struct {
	// ProposalHash is the hash of the proposal being decided, as the
	// workflow and its approval alert show it.
	ProposalHash string `json:"proposal_hash"`
	// Gate names the gate decided; empty decides the one that is open.
	Gate    string `json:"gate,omitempty"`
	Comment string `json:"comment,omitempty"`
}

// ActionRequest is the body of the abort and rollback endpoints.
type ActionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// errNoWorkflows answers workflow requests when no executor is configured.
var errNoWorkflows = &apiError{typ: ErrUnavailable, status: http.StatusServiceUnavailable,
	err: errors.New("workflows are not configured: set workflow.webhook or workflow.exec and workflow.approvers in the configuration file")}

// user returns the authenticated user of a request that changes state.
func (a *API) user(r *http.Request) (string, *apiError) {
	if a.o.Authenticated == nil {
		return "", &apiError{typ: "unauthorized", status: http.StatusUnauthorized,
			err: errors.New("authentication is not configured: set basic_auth_users in --web.config.file")}
	}
	u, ok := a.o.Authenticated(r)
	if !ok || u == "" {
		return "", &apiError{typ: "unauthorized", status: http.StatusUnauthorized, err: errors.New("this request changes state and needs an authenticated user (HTTP basic auth)")}
	}
	return u, nil
}

// mutation starts a request that changes a workflow: workflows must be
// configured and the user authenticated; the body is decoded into v.
func (a *API) mutation(r *http.Request, v any) (string, *apiError) {
	if a.o.Workflows == nil {
		return "", errNoWorkflows
	}
	user, apiErr := a.user(r)
	if apiErr != nil {
		return "", apiErr
	}
	if apiErr := a.decode(r, v); apiErr != nil {
		return "", apiErr
	}
	return user, nil
}

// workflowError maps the controller's errors to HTTP answers.
func workflowError(err error) *apiError {
	var conflict *workflow.ConflictError
	switch {
	case errors.Is(err, workflow.ErrUnauthenticated):
		return &apiError{typ: "unauthorized", status: http.StatusUnauthorized, err: err}
	case errors.Is(err, workflow.ErrNotApprover), errors.Is(err, workflow.ErrSelfApproval):
		return &apiError{typ: "forbidden", status: http.StatusForbidden, err: err}
	case errors.Is(err, workflow.ErrNotFound):
		return &apiError{typ: ErrNotFound, status: http.StatusNotFound, err: err}
	case errors.As(err, &conflict), errors.Is(err, workflow.ErrConflict), errors.Is(err, workflow.ErrProposalMismatch),
		errors.Is(err, workflow.ErrNoOpenGate), errors.Is(err, workflow.ErrAlreadyDecided), errors.Is(err, workflow.ErrInvalidTransition):
		return &apiError{typ: "conflict", status: http.StatusConflict, err: err}
	case errors.Is(err, workflow.ErrInvalidChange):
		return &apiError{typ: ErrBadData, status: http.StatusBadRequest, err: err}
	default:
		return &apiError{typ: ErrInternal, status: http.StatusInternalServerError, err: err}
	}
}

func (a *API) createWorkflow(r *http.Request) (any, *apiError) {
	var req CreateWorkflowRequest
	user, apiErr := a.mutation(r, &req)
	if apiErr != nil {
		return nil, apiErr
	}
	if req.Recommendation == "" {
		return nil, badData("recommendation", "is required: the id of a current recommendation (GET /api/v1/recommendations)")
	}
	rec, apiErr := a.findRecommendation(req.Recommendation, req.Instance)
	if apiErr != nil {
		return nil, apiErr
	}
	if rec.Action.Kind != recommender.KindFlag {
		return nil, badData("recommendation", "%s is a %s action; workflows carry engine flag changes", rec.ID, rec.Action.Kind)
	}
	pool, apiErr := a.pool(rec, req.Instances)
	if apiErr != nil {
		return nil, apiErr
	}
	w, err := a.o.Workflows.Create(r.Context(), workflow.CreateRequest{Change: changeOf(rec), Pool: pool, Requester: user, Stages: req.Stages}, a.o.Now())
	if err != nil {
		return nil, workflowError(err)
	}
	return w, nil
}

// findRecommendation picks a current recommendation by id and instance.
func (a *API) findRecommendation(id, instance string) (recommender.Recommendation, *apiError) {
	var matches []recommender.Recommendation
	for _, rec := range a.o.Recommendations.Latest().Recommendations {
		if rec.ID == id && (instance == "" || rec.Instance == instance || slices.Contains(rec.Action.Instances, instance)) {
			matches = append(matches, rec)
		}
	}
	switch len(matches) {
	case 0:
		return recommender.Recommendation{}, notFound("recommendation: no current recommendation %q%s; GET /api/v1/recommendations lists them", id, forInstance(instance))
	case 1:
		return matches[0], nil
	default:
		return recommender.Recommendation{}, badData("instance", "%d current recommendations have the id %q; name the instance", len(matches), id)
	}
}

func forInstance(instance string) string {
	if instance == "" {
		return ""
	}
	return " for instance " + instance
}

// pool is every serving instance of the recommendation's engine and model,
// narrowed to the requested instances.
func (a *API) pool(rec recommender.Recommendation, want []string) ([]string, *apiError) {
	snap := a.o.Collector.Latest()
	if snap == nil {
		return nil, &apiError{typ: ErrUnavailable, status: http.StatusServiceUnavailable, err: errors.New("no collection has completed yet")}
	}
	var pool []string
	for _, in := range snap.Instances {
		if in.Engine == rec.Engine && in.Model == rec.Model {
			pool = append(pool, in.Instance)
		}
	}
	if len(want) == 0 {
		return pool, nil
	}
	for _, w := range want {
		if !slices.Contains(pool, w) {
			return nil, badData("instances", "%q is not an instance of %s %s (pool: %s)", w, rec.Engine, rec.Model, strings.Join(pool, ", "))
		}
	}
	return want, nil
}

// changeOf carries a recommendation into a workflow.
func changeOf(rec recommender.Recommendation) workflow.Change {
	c := workflow.Change{
		RecommendationID: rec.ID, Engine: rec.Engine, Model: rec.Model, Kind: rec.Action.Kind,
		Flag: rec.Action.Flag, From: rec.Action.Current, To: rec.Action.Proposed, Unit: rec.Action.Unit,
		Risk: rec.Risk, Evidence: rec.Rationale,
	}
	for _, e := range rec.Effects {
		c.Targets = append(c.Targets, workflow.Target{Signal: e.Signal, Quantile: e.Quantile, Expected: workflow.Direction(e.Direction)})
	}
	return c
}

func (a *API) listWorkflows(r *http.Request) (any, *apiError) {
	if a.o.Workflows == nil {
		return nil, errNoWorkflows
	}
	q := r.URL.Query()
	f := workflow.Filter{Engine: q.Get("engine"), Model: q.Get("model"), NoEvents: true}
	for _, s := range q["state"] {
		var st workflow.State
		if err := st.UnmarshalText([]byte(s)); err != nil {
			return nil, badData("state", "%v", err)
		}
		f.States = append(f.States, st)
	}
	switch q.Get("active") {
	case "", "false":
	case "true":
		f.Active = true
	default:
		return nil, badData("active", "%q is not true or false", q.Get("active"))
	}
	ws, err := a.o.Workflows.List(r.Context(), f)
	if err != nil {
		return nil, workflowError(err)
	}
	return map[string]any{"workflows": nonNil(ws)}, nil
}

func (a *API) getWorkflow(r *http.Request) (any, *apiError) {
	if a.o.Workflows == nil {
		return nil, errNoWorkflows
	}
	w, err := a.o.Workflows.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return nil, workflowError(err)
	}
	return w, nil
}

func (a *API) decideWorkflow(approve bool) handlerFunc {
	return func(r *http.Request) (any, *apiError) {
		var req DecisionRequest
		user, apiErr := a.mutation(r, &req)
		if apiErr != nil {
			return nil, apiErr
		}
		if req.ProposalHash == "" {
			return nil, badData("proposal_hash", "is required: the hash of the proposal you decide on, as GET /api/v1/workflows/{id} shows it")
		}
		id, now := mux.Vars(r)["id"], a.o.Now()
		var (
			w   workflow.Workflow
			err error
		)
		switch {
		case req.Gate != "":
			w, err = a.o.Workflows.Decide(r.Context(), id, workflow.Decision{Gate: req.Gate, User: user, Approved: approve, ProposalHash: req.ProposalHash, Comment: req.Comment}, now)
		case approve:
			w, err = a.o.Workflows.Approve(r.Context(), id, user, req.ProposalHash, req.Comment, now)
		default:
			w, err = a.o.Workflows.Reject(r.Context(), id, user, req.ProposalHash, req.Comment, now)
		}
		if err != nil {
			return nil, workflowError(err)
		}
		return w, nil
	}
}

// workflowRoutes are the workflow endpoints.
func (a *API) workflowRoutes() []route {
	return []route{
		{"/workflows", http.MethodPost, a.createWorkflow},
		{"/workflows", http.MethodGet, a.listWorkflows},
		{"/workflows/{id}", http.MethodGet, a.getWorkflow},
		{"/workflows/{id}/approve", http.MethodPost, a.decideWorkflow(true)},
		{"/workflows/{id}/reject", http.MethodPost, a.decideWorkflow(false)},
		{"/workflows/{id}/abort", http.MethodPost, a.actOnWorkflow(Workflows.Abort)},
		{"/workflows/{id}/rollback", http.MethodPost, a.actOnWorkflow(Workflows.Rollback)},
	}
}

// workflowAction is an operation a person takes on a workflow.
type workflowAction func(w Workflows, ctx context.Context, id, user, reason string, now time.Time) (workflow.Workflow, error)

func (a *API) actOnWorkflow(act workflowAction) handlerFunc {
	return func(r *http.Request) (any, *apiError) {
		var req ActionRequest
		user, apiErr := a.mutation(r, &req)
		if apiErr != nil {
			return nil, apiErr
		}
		w, err := act(a.o.Workflows, r.Context(), mux.Vars(r)["id"], user, req.Reason, a.o.Now())
		if err != nil {
			return nil, workflowError(err)
		}
		return w, nil
	}
}
