package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Approve records user's approval of the open gate. The proposal hash must
// be the workflow's. Approving twice returns the workflow unchanged.
func (c *Controller) Approve(ctx context.Context, id, user, proposalHash, comment string, now time.Time) (Workflow, error) {
	return c.Decide(ctx, id, Decision{User: user, Approved: true, ProposalHash: proposalHash, Comment: comment}, now)
}

// Reject records user's rejection of the open gate: the start gate ends
// the workflow; later gates roll back.
func (c *Controller) Reject(ctx context.Context, id, user, proposalHash, comment string, now time.Time) (Workflow, error) {
	return c.Decide(ctx, id, Decision{User: user, Approved: false, ProposalHash: proposalHash, Comment: comment}, now)
}

// Decide records d on workflow id. With d.Gate set, the decision applies
// only to that gate, so a late repeat of an earlier gate's decision cannot
// decide a later gate; with it empty, it applies to whichever gate is
// open. d.Time is set to now. A decision equal to the recorded one for the
// gate returns the workflow unchanged; the opposite one returns
// ErrAlreadyDecided.
func (c *Controller) Decide(ctx context.Context, id string, d Decision, now time.Time) (Workflow, error) {
	if err := c.authorise(d.User); err != nil {
		return Workflow{}, err
	}
	d.Time = now
	ev := Event{Type: EventReject, Actor: d.User, Reason: d.Comment}
	if d.Approved {
		ev.Type = EventApprove
	}
	var acts []Action
	w, err := c.opts.Store.Update(id, func(w Workflow) (Workflow, error) {
		if d.User == w.Requester {
			return w, ErrSelfApproval
		}
		if d.ProposalHash != w.ProposalHash {
			return w, fmt.Errorf("%w: workflow %s is %s", ErrProposalMismatch, w.ID, w.ProposalHash)
		}
		g, open := w.OpenGate()
		open = open && w.State.Waiting()
		gate := d.Gate
		if gate == "" {
			if open {
				gate = g.Name
			} else if m := len(w.Gates); m > 0 {
				gate = w.Gates[m-1].Name
			}
		}
		if !open || g.Name != gate {
			// A repeat is answered from the recorded decision on that gate.
			for i := len(w.Decisions) - 1; i >= 0; i-- {
				if prev := w.Decisions[i]; prev.Gate == gate {
					if prev.Approved == d.Approved {
						return w, errUnchanged
					}
					return w, fmt.Errorf("%w: %s by %s", ErrAlreadyDecided, gate, prev.User)
				}
			}
			return w, fmt.Errorf("%w: %s is %s", ErrNoOpenGate, w.ID, w.State)
		}
		n, a, err := Transition(w, ev, now)
		if err != nil {
			return w, err
		}
		d.Gate = gate
		n.Decisions = append(n.Decisions, d)
		acts = a
		return n, nil
	})
	if errors.Is(err, errUnchanged) {
		return c.opts.Store.Get(id)
	}
	if err != nil {
		return Workflow{}, err
	}
	c.recorded(w, acts, now)
	return w, nil
}

func (c *Controller) authorise(user string) error {
	if user == "" {
		return ErrUnauthenticated
	}
	if !slices.Contains(c.opts.Approvers, user) {
		return fmt.Errorf("%w: %s", ErrNotApprover, user)
	}
	return nil
}

// Abort stops a workflow: before anything changed it ends (cancelled or
// aborted); afterwards every changed instance is rolled back.
func (c *Controller) Abort(ctx context.Context, id, user, reason string, now time.Time) (Workflow, error) {
	return c.manual(ctx, id, user, EventAbort, reason, now)
}

// Rollback reverts every changed instance of a running workflow, or
// retries a failed rollback of one that needs attention.
func (c *Controller) Rollback(ctx context.Context, id, user, reason string, now time.Time) (Workflow, error) {
	return c.manual(ctx, id, user, EventRollback, reason, now)
}

// Cancel ends a workflow that has not started, for example because the
// bottleneck it addressed is gone. actor names who decided.
func (c *Controller) Cancel(ctx context.Context, id, actor, reason string, now time.Time) (Workflow, error) {
	return c.fire(ctx, id, nil, Event{Type: EventCancel, Actor: actor, Reason: reason}, now, nil)
}

func (c *Controller) manual(ctx context.Context, id, user string, t EventType, reason string, now time.Time) (Workflow, error) {
	if user == "" {
		return Workflow{}, ErrUnauthenticated
	}
	w, err := c.opts.Store.Get(id)
	if err != nil {
		return Workflow{}, err
	}
	if user != w.Requester {
		if err := c.authorise(user); err != nil {
			return Workflow{}, err
		}
	}
	return c.fire(ctx, id, nil, Event{Type: t, Actor: user, Reason: reason}, now, nil)
}

// fire applies ev to the stored workflow. With expect set, it does nothing
// unless the workflow is still in that state (someone else moved it on).
// mutate runs on the workflow before the transition, in the same update.
func (c *Controller) fire(ctx context.Context, id string, expect *State, ev Event, now time.Time, mutate func(*Workflow)) (Workflow, error) {
	var acts []Action
	w, err := c.opts.Store.Update(id, func(w Workflow) (Workflow, error) {
		if expect != nil && w.State != *expect {
			return w, errUnchanged
		}
		if mutate != nil {
			mutate(&w)
		}
		n, a, err := Transition(w, ev, now)
		acts = a
		return n, err
	})
	if err != nil {
		return w, err
	}
	c.recorded(w, acts, now)
	return w, nil
}
