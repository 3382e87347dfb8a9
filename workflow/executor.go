package workflow

import (
	"context"
	"fmt"
	"time"
)

// Operation says whether an executor call applies or reverts the change.
type Operation string

// Operations.
const (
	OperationApply    Operation = "apply"
	OperationRollback Operation = "rollback"
	// OperationRead asks for the instance's current value of Flag and
	// changes nothing; From, To and IdempotencyKey are empty.
	OperationRead Operation = "read"
)

// Request is one executor call: set Flag from From to To on Instance.
// A rollback request carries the value to restore in To.
type Request struct {
	WorkflowID     string    `json:"workflow_id"`
	Stage          string    `json:"stage"`
	Instance       string    `json:"instance"`
	Operation      Operation `json:"operation"`
	Engine         string    `json:"engine"`
	Model          string    `json:"model"`
	Flag           string    `json:"flag"`
	From           string    `json:"from"`
	To             string    `json:"to"`
	Unit           string    `json:"unit,omitempty"`
	IdempotencyKey string    `json:"idempotency_key"`
}

// Executor changes an engine setting on one instance and returns once the
// instance serves with it. Calls with the same IdempotencyKey must have the
// effect of one call: after a crash the controller repeats a call whose
// outcome it did not record.
type Executor interface {
	Execute(ctx context.Context, r Request) error
}

// Reader is implemented by executors that can read an instance's current
// value of a setting (a Request with OperationRead). A workflow records
// what each instance had right before changing it, so that a rollback
// restores that value. Read returns ErrReadUnsupported when the executor
// is not configured to read.
type Reader interface {
	Read(ctx context.Context, r Request) (string, error)
}

// IdempotencyKey derives the key of a call from the workflow, stage,
// instance and operation. For rollbacks, round counts the rollback rounds
// (a person may start another after one failed) and attempt the retries
// within a round, so that every retry reaches the executor.
func IdempotencyKey(workflowID, stage, instance string, op Operation, round, attempt int) string {
	switch {
	case op == OperationRollback && attempt > 0:
		return fmt.Sprintf("%s/%s/%s/%s-%d.%d", workflowID, stage, instance, op, max(round, 1), attempt+1)
	case op == OperationRollback && round > 1:
		return fmt.Sprintf("%s/%s/%s/%s-%d", workflowID, stage, instance, op, round)
	}
	return fmt.Sprintf("%s/%s/%s/%s", workflowID, stage, instance, op)
}

// SleepFunc waits for d or until ctx is done. Tests inject one that does
// not sleep.
type SleepFunc func(ctx context.Context, d time.Duration) error

// Sleep is the real SleepFunc.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff returns the wait before retry attempt n (1-based): base doubled
// per attempt, capped at max.
func backoff(base, maxWait time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}
