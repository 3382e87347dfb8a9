package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-kit/log/level"
)

// fireFunc fires an event on the workflow a step works on, if it is still
// in the state the step saw; moved reports that the workflow moved on.
type fireFunc func(t EventType, reason string, mutate func(*Workflow)) (Workflow, bool, error)

// noteQueryError records a failed query and reports whether the outage
// exhausted both the error budget and the error count.
func (c *Controller) noteQueryError(w Workflow, now time.Time) (Workflow, bool, error) {
	n, err := c.opts.Store.Update(w.ID, func(x Workflow) (Workflow, error) {
		if x.State != w.State {
			return x, errUnchanged
		}
		if x.ErrorSince.IsZero() {
			x.ErrorSince = now
		}
		x.ErrorTicks++
		return x, nil
	})
	if errors.Is(err, errUnchanged) {
		// Someone moved the workflow on; the next step sees where.
		n, err = c.opts.Store.Get(w.ID)
		return n, false, err
	}
	if err != nil {
		return w, false, err
	}
	return n, n.ErrorTicks >= c.opts.MaxQueryErrors && now.Sub(n.ErrorSince) >= c.opts.ErrorBudget, nil
}

// preflight checks that the metrics source answers and that every
// validated signal has series for the pool before anything changes.
func (c *Controller) preflight(ctx context.Context, w Workflow, now time.Time, fire fireFunc) (Workflow, bool, error) {
	if _, err := c.opts.Source.Query(ctx, "vector(1)", now); err != nil {
		if ctx.Err() != nil {
			return w, false, ctx.Err()
		}
		level.Warn(c.opts.Logger).Log("msg", "Preflight query failed", "workflow", w.ID, "err", err)
		n, exhausted, serr := c.noteQueryError(w, now)
		if serr != nil || !exhausted {
			return n, false, serr
		}
		return fire(EventPreflightFailed, "metrics source unavailable: "+err.Error(), nil)
	}
	for _, m := range MetricsFor(w.Change) {
		expr := "count(" + selector(m.Signal, w.Change.Engine, w.Change.Model, w.Pool, m.Quantile) + ")"
		v, err := c.opts.Source.Query(ctx, expr, now)
		if err != nil {
			if ctx.Err() != nil {
				return w, false, ctx.Err()
			}
			n, exhausted, serr := c.noteQueryError(w, now)
			if serr != nil || !exhausted {
				return n, false, serr
			}
			return fire(EventPreflightFailed, "metrics source unavailable: "+err.Error(), nil)
		}
		if len(v) == 0 {
			return fire(EventPreflightFailed, "no series for "+m.Name()+" in the pool", nil)
		}
	}
	return fire(EventPreflightPassed, "metrics source up and signals present", nil)
}

// execute calls the executor once per idempotency key: a finished call is
// not repeated; an unfinished one (crash after the intent) is. execErr is
// the executor's answer; err is a store or context error that stops the
// tick without recording anything.
func (c *Controller) execute(ctx context.Context, r Request, now time.Time) (execErr, err error) {
	e, found, err := c.opts.Store.Execution(r.IdempotencyKey)
	if err != nil {
		return nil, err
	}
	if found && e.Done() {
		if e.Error != "" {
			return errors.New(e.Error), nil
		}
		return nil, nil
	}
	if err := c.opts.Store.BeginExecution(r.IdempotencyKey, now); err != nil {
		return nil, err
	}
	execErr = c.opts.Executor.Execute(ctx, r)
	if ctx.Err() != nil {
		// The outcome is unknown; the intent stays and a later tick repeats
		// the call with the same key.
		return nil, fmt.Errorf("executor call %s interrupted: %w", r.IdempotencyKey, ctx.Err())
	}
	if err := c.opts.Store.FinishExecution(r.IdempotencyKey, now, execErr); err != nil {
		return nil, err
	}
	return execErr, nil
}

func (c *Controller) request(w Workflow, stage, inst string, op Operation) Request {
	r := Request{
		WorkflowID: w.ID, Stage: stage, Instance: inst, Operation: op, Engine: w.Change.Engine, Model: w.Change.Model,
		Flag: w.Change.Flag, From: w.Change.From, To: w.Change.To, Unit: w.Change.Unit,
		IdempotencyKey: IdempotencyKey(w.ID, stage, inst, op, w.RollbackRounds),
	}
	if op == OperationRollback {
		r.From, r.To = w.Change.To, w.Change.From
	}
	return r
}

// apply changes the instances of the current stage (or, promoting, the
// rest of the pool) one by one. Every instance goes through execute, which
// answers from the record for calls already made, so a failure recorded
// before a crash is still a failure after it.
func (c *Controller) apply(ctx context.Context, w Workflow, now time.Time, fire fireFunc) (Workflow, bool, error) {
	stage := w.StageName()
	for _, inst := range w.StageInstances() {
		execErr, err := c.execute(ctx, c.request(w, stage, inst, OperationApply), now)
		if err != nil {
			return w, false, err
		}
		if _, ok := w.instance(inst); !ok {
			// Recorded even when the call failed: a failed apply may have
			// changed the instance, so rollback reverts it too.
			w, err = c.opts.Store.Update(w.ID, func(x Workflow) (Workflow, error) {
				if _, ok := x.instance(inst); !ok {
					x.Instances = append(x.Instances, InstanceChange{Instance: inst, Stage: stage, AppliedAt: now})
				}
				return x, nil
			})
			if err != nil {
				return w, false, err
			}
		}
		if w.State != StateApplying && w.State != StatePromoting {
			// Aborted meanwhile; the next step rolls back.
			return w, true, nil
		}
		if execErr != nil {
			return fire(EventApplyFailed, fmt.Sprintf("apply on %s failed: %v", inst, execErr), nil)
		}
	}
	if w.State == StatePromoting {
		return fire(EventPromoted, "promoted to the whole pool", nil)
	}
	return fire(EventApplied, stage+" applied", nil)
}

// rollback reverts every changed instance, newest first.
func (c *Controller) rollback(ctx context.Context, w Workflow, now time.Time, fire fireFunc) (Workflow, bool, error) {
	for i := len(w.Instances) - 1; i >= 0; i-- {
		ic := w.Instances[i]
		if ic.AppliedAt.IsZero() || !ic.RevertedAt.IsZero() {
			continue
		}
		execErr, err := c.execute(ctx, c.request(w, ic.Stage, ic.Instance, OperationRollback), now)
		if err != nil {
			return w, false, err
		}
		if execErr != nil {
			return fire(EventRollbackFailed, fmt.Sprintf("rollback on %s failed: %v", ic.Instance, execErr), nil)
		}
		w, err = c.opts.Store.Update(w.ID, func(x Workflow) (Workflow, error) {
			for j := range x.Instances {
				if x.Instances[j].Instance == ic.Instance {
					x.Instances[j].RevertedAt = now
				}
			}
			return x, nil
		})
		if err != nil {
			return w, false, err
		}
	}
	return fire(EventRolledBack, "every changed instance reverted", nil)
}

// analyse judges the window once it ended and its samples were ingested.
func (c *Controller) analyse(ctx context.Context, w Workflow, now time.Time, fire fireFunc) (Workflow, bool, error) {
	if now.Before(w.Deadline.Add(c.opts.IngestionLag)) {
		return w, false, nil
	}
	cmp := Comparison{
		Stage: w.StageName(), Engine: w.Change.Engine, Model: w.Change.Model,
		Canary: w.Changed(), Baseline: w.Untouched(),
		Start: w.WindowStart, End: w.Deadline, BaselineStart: w.WindowStart, BaselineEnd: w.Deadline,
		Metrics: MetricsFor(w.Change),
	}
	if w.State == StateVerifying || len(cmp.Baseline) == 0 {
		cmp.PreChange = true
		cmp.Baseline = cmp.Canary
		cmp.BaselineEnd = w.ChangeStartedAt
		cmp.BaselineStart = w.ChangeStartedAt.Add(-w.Deadline.Sub(w.WindowStart))
	}
	res := c.opts.Validator.Validate(ctx, cmp, now)
	if ctx.Err() != nil {
		return w, false, ctx.Err()
	}
	if res.QueryFailed() {
		c.opts.Metrics.Validations.WithLabelValues("error").Inc()
		n, exhausted, err := c.noteQueryError(w, now)
		if err != nil || !exhausted {
			return n, false, err
		}
		res.Verdict, res.Reason = VerdictInconclusive, "metrics source errors beyond the budget: "+res.Reason
	} else {
		c.opts.Metrics.Validations.WithLabelValues(string(res.Verdict)).Inc()
	}
	keep := func(x *Workflow) { x.Results = append(x.Results, res) }
	switch res.Verdict {
	case VerdictPass:
		if w.State == StateVerifying {
			return fire(EventVerified, res.Reason, keep)
		}
		return fire(EventAnalysisPassed, res.Reason, keep)
	case VerdictFail:
		return fire(EventAnalysisFailed, res.Reason, keep)
	default:
		return fire(EventAnalysisInconclusive, res.Reason, keep)
	}
}
