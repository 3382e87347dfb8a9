package workflow

import (
	"errors"
	"fmt"
)

// Sentinel errors. The HTTP layer maps them to status codes: ErrNotFound
// 404, ErrUnauthenticated 401, ErrNotApprover and ErrSelfApproval 403,
// ErrProposalMismatch, ErrNoOpenGate, ErrAlreadyDecided, ErrConflict and
// ErrInvalidTransition 409, ErrInvalidChange 400.
var (
	// ErrNotFound means no workflow has the id.
	ErrNotFound = errors.New("workflow not found")
	// ErrUnauthenticated means a decision came without a user.
	ErrUnauthenticated = errors.New("no user given")
	// ErrNotApprover means the user is not in the approver list.
	ErrNotApprover = errors.New("user is not an approver")
	// ErrSelfApproval means the requester tried to decide on their own change.
	ErrSelfApproval = errors.New("requester cannot decide on their own change")
	// ErrProposalMismatch means the decision names another proposal hash.
	ErrProposalMismatch = errors.New("proposal hash does not match")
	// ErrNoOpenGate means the workflow waits for no decision.
	ErrNoOpenGate = errors.New("workflow waits for no decision")
	// ErrAlreadyDecided means another decision closed the gate first.
	ErrAlreadyDecided = errors.New("gate already decided otherwise")
	// ErrInvalidTransition means the event is not defined in the state.
	ErrInvalidTransition = errors.New("invalid transition")
	// ErrInvalidChange means a workflow could not be created from the input.
	ErrInvalidChange = errors.New("invalid change")
)

// ConflictError means an instance already belongs to an active workflow.
type ConflictError struct {
	Instance string
	Workflow string
}

// Error names the instance and the workflow holding it.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("instance %q is in active workflow %s", e.Instance, e.Workflow)
}

// Is makes errors.Is(err, ErrConflict) match any ConflictError.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrConflict matches every ConflictError.
var ErrConflict = errors.New("instance in another active workflow")
