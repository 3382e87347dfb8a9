package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
			// The right hash is not echoed: a decision must come from
			// someone who read the proposal it approves.
			return w, fmt.Errorf("%w: review workflow %s (GET /api/v1/workflows/%s) and send the proposal_hash it shows", ErrProposalMismatch, w.ID, w.ID)
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
			if open {
				return w, fmt.Errorf("%w: gate %s of %s is not open; the open gate is %s", ErrNoOpenGate, gate, w.ID, g.Name)
			}
			return w, fmt.Errorf("%w: %s is %s and has no open gate", ErrNoOpenGate, w.ID, w.State)
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
	if !slices.Contains(c.cur().Approvers, user) {
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
	if w.State == StateNeedsAttention && t == EventAbort {
		return Workflow{}, fmt.Errorf("%w: %s needs attention with %s still changed; retry the rollback, or mark each instance restored by hand (POST /api/v1/workflows/%s/instances/{instance}/resolve)",
			ErrInvalidTransition, w.ID, strings.Join(w.Changed(), ", "), w.ID)
	}
	return c.fire(ctx, id, nil, Event{Type: t, Actor: user, Reason: reason}, now, nil)
}

// Resolve records that a person restored instance by hand after automatic
// rollbacks failed. Only a workflow that needs attention takes it; once no
// instance is still changed, the workflow is rolled back and its pool is
// free again.
func (c *Controller) Resolve(ctx context.Context, id, instance, user, reason string, now time.Time) (Workflow, error) {
	if err := c.authorise(user); err != nil {
		return Workflow{}, err
	}
	if strings.TrimSpace(reason) == "" {
		return Workflow{}, fmt.Errorf("%w: say how %s was restored (reason)", ErrInvalidChange, instance)
	}
	var (
		acts  []Action
		ended bool
	)
	w, err := c.opts.Store.Update(id, func(w Workflow) (Workflow, error) {
		if w.State != StateNeedsAttention {
			return w, fmt.Errorf("%w: %s is %s; instances are marked restored by hand only when a rollback failed (needs_attention)", ErrInvalidTransition, w.ID, w.State)
		}
		i := slices.IndexFunc(w.Instances, func(ic InstanceChange) bool { return ic.Instance == instance && ic.changed() })
		if i < 0 {
			return w, fmt.Errorf("%w: %s is not among the still-changed instances of %s (%s)", ErrInstanceNotChanged, instance, w.ID, strings.Join(w.Changed(), ", "))
		}
		n := w.clone()
		n.Instances[i].Resolved = &Resolution{User: user, Reason: reason, Time: now}
		n.UpdatedAt = now
		if len(n.Changed()) > 0 {
			return n, nil
		}
		n, a, err := Transition(n, Event{Type: EventResolved, Actor: user, Reason: "every changed instance restored by hand; last: " + instance + ": " + reason}, now)
		acts, ended = a, err == nil
		return n, err
	})
	if err != nil {
		return Workflow{}, err
	}
	c.opts.Logger.Warn("Instance marked restored by hand", "workflow", id, "instance", instance, "user", user,
		"reason", reason, "still_changed", strings.Join(w.Changed(), ","))
	if ended {
		c.recorded(w, acts, now)
	}
	return w, nil
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
