package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
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
		c.opts.Logger.Warn("Preflight query failed", "workflow", w.ID, "err", err)
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
	execErr = c.cur().Executor.Execute(ctx, r)
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

// request builds the executor call that applies the change to ic's
// instance or, for a rollback, restores the value it had.
func (c *Controller) request(w Workflow, ic InstanceChange, op Operation) Request {
	r := Request{
		WorkflowID: w.ID, Stage: ic.Stage, Instance: ic.Instance, Operation: op, Engine: w.Change.Engine, Model: w.Change.Model,
		Flag: w.Change.Flag, From: ic.From, To: w.Change.To, Unit: w.Change.Unit,
		IdempotencyKey: IdempotencyKey(w.ID, ic.Stage, ic.Instance, op, w.RollbackRounds, w.RollbackAttempts),
	}
	if op == OperationRollback {
		r.From, r.To = w.Change.To, ic.From
	}
	return r
}

// valueBefore learns what inst has right before it is changed: read by the
// executor when it can, else the value known at proposal. A read that
// differs from the proposal means the instance changed since the approval,
// and the approved proposal no longer holds.
func (c *Controller) valueBefore(ctx context.Context, w Workflow, inst string) (InstanceChange, error) {
	proposed, ok := w.CurrentOf(inst)
	if !ok {
		return InstanceChange{}, fmt.Errorf("no value of %s recorded for %s at proposal", w.Change.Flag, inst)
	}
	v, err := c.read(ctx, w.Change, inst)
	switch {
	case errors.Is(err, ErrReadUnsupported):
		return InstanceChange{Instance: inst, From: proposed.Value, FromSource: FromProposal}, nil
	case err != nil:
		return InstanceChange{}, fmt.Errorf("reading %s on %s before changing it: %w", w.Change.Flag, inst, err)
	case !SameValue(v, proposed.Value):
		return InstanceChange{}, fmt.Errorf("%s on %s is now %s, not %s as when it was approved; propose the change again", w.Change.Flag, inst, v, proposed.Value)
	}
	return InstanceChange{Instance: inst, From: v, FromSource: FromRead}, nil
}

// apply changes the instances of the current stage (or, promoting, the
// rest of the pool) one by one. Each instance's record, with the value to
// restore, is stored before the executor is called, so that a crash or a
// failed call that may still have changed it is rolled back too. Every
// call goes through execute, which answers from the record for calls
// already made, so a failure recorded before a crash is still a failure
// after it.
func (c *Controller) apply(ctx context.Context, w Workflow, now time.Time, fire fireFunc) (Workflow, bool, error) {
	stage := w.StageName()
	todo := w.StageInstances()
	if w.State == StatePromoting && len(todo) == 0 {
		return fire(EventVerified, "every pool instance was changed and validated in its stage", nil)
	}
	for _, inst := range todo {
		ic, ok := w.instance(inst)
		if !ok {
			var err error
			ic, err = c.valueBefore(ctx, w, inst)
			if ctx.Err() != nil {
				return w, false, ctx.Err()
			}
			if err != nil {
				return fire(EventApplyFailed, fmt.Sprintf("not applied on %s: %v", inst, err), nil)
			}
			ic.Stage, ic.AppliedAt = stage, now
			w, err = c.opts.Store.Update(w.ID, func(x Workflow) (Workflow, error) {
				if _, ok := x.instance(inst); !ok {
					x.Instances = append(x.Instances, ic)
				}
				return x, nil
			})
			if err != nil {
				return w, false, err
			}
			if w.State != StateApplying && w.State != StatePromoting {
				// Aborted meanwhile; the next step rolls back.
				return w, true, nil
			}
		}
		execErr, err := c.execute(ctx, c.request(w, ic, OperationApply), now)
		if err != nil {
			return w, false, err
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

// rollback restores every still-changed instance, newest first, trying
// each one even when another fails. A round that leaves instances changed
// is tried again after a backoff; after RollbackAttempts attempts the
// workflow needs attention and names the instances still changed.
func (c *Controller) rollback(ctx context.Context, w Workflow, now time.Time, fire fireFunc) (Workflow, bool, error) {
	if now.Before(w.NextAttemptAt) {
		return w, false, nil
	}
	var failed []string
	for i := len(w.Instances) - 1; i >= 0; i-- {
		ic := w.Instances[i]
		if !ic.changed() {
			continue
		}
		execErr, err := c.execute(ctx, c.request(w, ic, OperationRollback), now)
		if err != nil {
			return w, false, err
		}
		if execErr != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", ic.Instance, execErr))
			continue
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
	if len(failed) == 0 {
		return fire(EventRolledBack, "every changed instance restored", nil)
	}
	attempt := w.RollbackAttempts + 1
	if attempt >= c.cur().RollbackAttempts {
		reason := fmt.Sprintf("rollback failed %d times; still changed: %s; last errors: %s",
			attempt, strings.Join(w.Changed(), ", "), strings.Join(failed, "; "))
		return fire(EventRollbackFailed, reason, func(x *Workflow) { x.RollbackAttempts = attempt })
	}
	wait := backoff(c.cur().RollbackBackoff, c.opts.RollbackMaxBackoff, attempt)
	c.opts.Logger.Warn("Rollback attempt failed; retrying", "workflow", w.ID, "attempt", attempt,
		"retry_in", wait, "still_changed", strings.Join(w.Changed(), ","), "err", strings.Join(failed, "; "))
	n, err := c.opts.Store.Update(w.ID, func(x Workflow) (Workflow, error) {
		if x.State != StateRollingBack {
			return x, errUnchanged
		}
		x.RollbackAttempts, x.NextAttemptAt = attempt, now.Add(wait)
		return x, nil
	})
	if errors.Is(err, errUnchanged) {
		n, err = c.opts.Store.Get(w.ID)
	}
	return n, false, err
}

// analyse judges the window once it ended and its samples were ingested.
func (c *Controller) analyse(ctx context.Context, w Workflow, now time.Time, fire fireFunc) (Workflow, bool, error) {
	if now.Before(w.Deadline.Add(c.cur().IngestionLag)) {
		return w, false, nil
	}
	cmp := Comparison{
		Stage: w.StageName(), Engine: w.Change.Engine, Model: w.Change.Model,
		Canary: w.Changed(), Peers: append(w.Untouched(), w.Baseline...),
		Start: w.WindowStart, End: w.Deadline,
		PreStart: w.ChangeStartedAt.Add(-w.Deadline.Sub(w.WindowStart)), PreEnd: w.ChangeStartedAt,
		Metrics: MetricsFor(w.Change),
	}
	for _, ic := range w.Instances {
		if ic.changed() && ic.AppliedAt.After(cmp.ChangedAt) {
			cmp.ChangedAt = ic.AppliedAt
		}
	}
	res := c.cur().Validator.Validate(ctx, cmp, now)
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
	if len(res.Restarted) > 0 && w.WindowRestarts == 0 {
		return fire(EventCanaryRestarted, res.Reason+"; the window starts again after a warm-up", keep)
	}
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
