package workflow

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. The HTTP layer maps them to status codes: ErrNotFound
// 404, ErrUnauthenticated 401, ErrNotApprover and ErrSelfApproval 403,
// ErrProposalMismatch, ErrNoOpenGate, ErrAlreadyDecided, ErrConflict and
// ErrInvalidTransition 409, ErrInvalidChange 400, ErrUnknownCurrent 422.
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
	// ErrUnknownCurrent matches every UnknownCurrentError.
	ErrUnknownCurrent = errors.New("current value unknown")
	// ErrReadUnsupported means the executor cannot read current values.
	ErrReadUnsupported = errors.New("the executor cannot read current values")
	// ErrInstanceNotChanged means an instance named in a request holds no
	// change of the workflow.
	ErrInstanceNotChanged = errors.New("instance holds no change of the workflow")
)

// UnknownCurrentError refuses a workflow because the value a rollback would
// restore is not known on some pool instances.
type UnknownCurrentError struct {
	Flag string
	// Setting is the key of the setting in the agent's configuration
	// (targets[].settings), when known.
	Setting string
	// Instances lack a known value; Reasons say why the executor could
	// not read each.
	Instances []string
	Reasons   []string
}

// Error names the instances and says how to provide the value.
func (e *UnknownCurrentError) Error() string {
	key := e.Setting
	if key == "" {
		key = "<setting>"
	}
	return fmt.Sprintf("the current value of %s is unknown on %s (%s), so a rollback would have nothing to restore; "+
		"provide it in the configuration (settings: {%s: \"<value>\"} on the instance's source.targets or collector.instances entry), "+
		"or let the executor read it (workflow.webhook.read: true with a receiver that answers operation \"read\", or workflow.exec.read_argv)",
		e.Flag, strings.Join(e.Instances, ", "), strings.Join(e.Reasons, "; "), key)
}

// Is makes errors.Is(err, ErrUnknownCurrent) match.
func (e *UnknownCurrentError) Is(target error) bool { return target == ErrUnknownCurrent }

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
