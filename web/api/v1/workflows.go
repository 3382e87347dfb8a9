package v1

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/optiinfra/perfagent/agent"
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
	Resolve(ctx context.Context, id, instance, user, reason string, now time.Time) (workflow.Workflow, error)
}

// CreateWorkflowRequest is the body of POST /api/v1/workflows.
type CreateWorkflowRequest struct {
	// Recommendation is the id of a current recommendation
	// (GET /api/v1/recommendations), e.g. lower_max_num_seqs.
	Recommendation string `json:"recommendation"`
	// Instance picks the recommendation of this instance when several
	// share the id.
	Instance string `json:"instance,omitempty"`
	// Instances is the pool. A value is applied only where it was
	// computed: each instance needs a current recommendation with the same
	// id and proposed value. Empty means the recommendation's instance and
	// every instance whose recommendation is the same.
	Instances []string `json:"instances,omitempty"`
	// Stages replace the default stages (one canary, half, all).
	Stages []workflow.Stage `json:"stages,omitempty"`
}

// WorkflowView is a workflow as the API shows it, with the instances that
// hold its change now.
type WorkflowView struct {
	workflow.Workflow
	// StillChanged are the instances the workflow changed and has not
	// restored: the rollout's instances while it runs or after it
	// succeeded, and the ones a failed rollback left behind.
	StillChanged []string `json:"still_changed"`
}

func viewOf(w workflow.Workflow) WorkflowView {
	return WorkflowView{Workflow: w, StillChanged: nonNil(w.Changed())}
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

// ActionRequest is the body of the abort, rollback and resolve endpoints.
type ActionRequest struct {
	// Reason is recorded with the event; resolve requires it.
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
	if apiErr := sameOrigin(r); apiErr != nil {
		return "", apiErr
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

// sameOrigin refuses a change requested by a page of another site: a
// browser sends the agent's basic-auth credentials with any request to
// it, so a form elsewhere could otherwise act as the signed-in user.
// Browsers say where a request comes from (Sec-Fetch-Site, Origin);
// clients such as curl send neither and are not affected.
func sameOrigin(r *http.Request) *apiError {
	forbidden := func(why string) *apiError {
		return &apiError{typ: "forbidden", status: http.StatusForbidden, err: errors.New("cross-site request refused: " + why)}
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return forbidden("Sec-Fetch-Site is " + site)
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return forbidden("Origin " + origin + " is not " + r.Host)
		}
	}
	return nil
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
	case errors.Is(err, workflow.ErrUnknownCurrent):
		return &apiError{typ: ErrUnprocessable, status: http.StatusUnprocessableEntity, err: err}
	case errors.Is(err, workflow.ErrInstanceNotChanged):
		return &apiError{typ: "conflict", status: http.StatusConflict, err: err}
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
	// An instance of another shard has no recommendation here; say
	// where it has one.
	named := slices.DeleteFunc(append([]string{req.Instance}, req.Instances...), func(s string) bool { return s == "" })
	if err := workflow.NotOwned(a.o.Shard, named); err != nil {
		return nil, workflowError(err)
	}
	cr, err := agent.Propose(a.o.Recommendations.Latest(), a.o.Collector.Latest(), agent.ProposalRequest{
		Recommendation: req.Recommendation, Instance: req.Instance, Instances: req.Instances, Stages: req.Stages,
	})
	var perr *agent.ProposalError
	switch {
	case errors.As(err, &perr) && perr.NotFound:
		return nil, notFound("%s", perr.Error())
	case errors.As(err, &perr):
		return nil, badData(perr.Field, "%s", perr.Msg)
	case err != nil:
		return nil, &apiError{typ: ErrInternal, status: http.StatusInternalServerError, err: err}
	}
	cr.Requester = user
	w, err := a.o.Workflows.Create(r.Context(), cr, a.o.Now())
	if err != nil {
		return nil, workflowError(err)
	}
	return viewOf(w), nil
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
	views := make([]WorkflowView, len(ws))
	for i, w := range ws {
		views[i] = viewOf(w)
	}
	return WorkflowsResponse{Workflows: views}, nil
}

// WorkflowsResponse is the answer of GET /api/v1/workflows.
type WorkflowsResponse struct {
	Workflows []WorkflowView `json:"workflows"`
}

func (a *API) getWorkflow(r *http.Request) (any, *apiError) {
	if a.o.Workflows == nil {
		return nil, errNoWorkflows
	}
	w, err := a.o.Workflows.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return nil, workflowError(err)
	}
	return viewOf(w), nil
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
		return viewOf(w), nil
	}
}

// workflowRoutes are the workflow endpoints.
func (a *API) workflowRoutes() []route {
	view := WorkflowView{}
	return []route{
		{path: "/workflows", method: http.MethodPost, f: a.createWorkflow, doc: op{summary: "Propose an approval-gated, staged rollout of a recommendation", body: CreateWorkflowRequest{}, required: []string{"recommendation"}, resp: view, auth: true}},
		{path: "/workflows", method: http.MethodGet, f: a.listWorkflows, doc: op{summary: "Workflows, without their events", resp: WorkflowsResponse{}, query: []param{
			engineParam, modelParam,
			{name: "state", description: "keep workflows in these states", repeated: true},
			{name: "active", description: "true keeps unfinished workflows only"},
		}}},
		{path: "/workflows/{id}", method: http.MethodGet, f: a.getWorkflow, doc: op{summary: "One workflow with its events, decisions and validation results", resp: view}},
		{path: "/workflows/{id}/approve", method: http.MethodPost, f: a.decideWorkflow(true), doc: op{summary: "Approve the open gate (a listed approver who is not the requester)", body: DecisionRequest{}, required: []string{"proposal_hash"}, resp: view, auth: true}},
		{path: "/workflows/{id}/reject", method: http.MethodPost, f: a.decideWorkflow(false), doc: op{summary: "Reject the open gate", body: DecisionRequest{}, required: []string{"proposal_hash"}, resp: view, auth: true}},
		{path: "/workflows/{id}/abort", method: http.MethodPost, f: a.actOnWorkflow(Workflows.Abort), doc: op{summary: "Stop the workflow and restore every changed instance", body: ActionRequest{}, resp: view, auth: true}},
		{path: "/workflows/{id}/rollback", method: http.MethodPost, f: a.actOnWorkflow(Workflows.Rollback), doc: op{summary: "Restore every changed instance, or retry a failed rollback", body: ActionRequest{}, resp: view, auth: true}},
		{path: "/workflows/{id}/instances/{instance}/resolve", method: http.MethodPost, f: a.resolveInstance, doc: op{summary: "Say an instance a failed rollback left changed was restored by hand", body: ActionRequest{}, required: []string{"reason"}, resp: view, auth: true}},
	}
}

// resolveInstance records that a person restored an instance by hand after
// a rollback failed.
func (a *API) resolveInstance(r *http.Request) (any, *apiError) {
	var req ActionRequest
	user, apiErr := a.mutation(r, &req)
	if apiErr != nil {
		return nil, apiErr
	}
	if strings.TrimSpace(req.Reason) == "" {
		return nil, badData("reason", "is required: say how the instance was restored (it is logged and kept with the workflow)")
	}
	vars := mux.Vars(r)
	w, err := a.o.Workflows.Resolve(r.Context(), vars["id"], vars["instance"], user, req.Reason, a.o.Now())
	if err != nil {
		return nil, workflowError(err)
	}
	return viewOf(w), nil
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
		return viewOf(w), nil
	}
}
