package workflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/notifier"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/shard"
)

// ControllerOptions configure a Controller. Executor, Validator,
// Approvers, ExternalURL, Defaults, RollbackAttempts, RollbackBackoff,
// IngestionLag and TickInterval are the first Reloadable options;
// ApplyConfig replaces them.
type ControllerOptions struct {
	Store    Store
	Source   collector.Source
	Executor Executor
	// Validator defaults to NewValidator over Source.
	Validator *Validator
	// Alerts may be nil: then no alert is sent.
	Alerts AlertSink
	// Approvers may decide on gates, abort and roll back.
	Approvers []string
	// ExternalURL is the agent's public URL; workflow pages are below it.
	ExternalURL string
	// AgentName is the agent label of alerts.
	AgentName string
	// Defaults are the settings of workflows created without their own.
	Defaults Settings
	// ResendInterval paces alert re-sends (default 1m); firing alerts end
	// four intervals ahead.
	ResendInterval time.Duration
	// ResolvedFor is how long resolved alerts keep being sent (default 5m).
	ResolvedFor time.Duration
	// OutcomeFor is how long a rolled-back alert fires (default 1h).
	OutcomeFor time.Duration
	// IngestionLag is waited after a window ends before it is queried
	// (default 30s), so the newest samples have been ingested.
	IngestionLag time.Duration
	// ErrorBudget and MaxQueryErrors bound a metrics outage during
	// preflight and analysis: once both are exceeded the workflow pauses
	// (or, in preflight, aborts). Defaults 10m and 4.
	ErrorBudget    time.Duration
	MaxQueryErrors int
	// RollbackAttempts is how many times a rollback round tries every
	// still-changed instance before the workflow needs attention (default
	// 5); RollbackBackoff is the first wait between attempts (default
	// 30s), doubling up to RollbackMaxBackoff (default 10m).
	RollbackAttempts   int
	RollbackBackoff    time.Duration
	RollbackMaxBackoff time.Duration
	// TickInterval paces Run (default 15s).
	TickInterval time.Duration
	// Shard is the agent's share of the fleet; the zero value is all of
	// it. Create refuses instances of other shards: their signals are
	// collected, and their changes made, by the agent of their shard.
	Shard   shard.Shard
	Metrics *Metrics
	Logger  *slog.Logger
	// Now is Run's clock (default time.Now).
	Now func() time.Time
}

// Controller drives workflows: the caller creates them and records
// decisions; Tick takes every due step. All state lives in the Store, so a
// new Controller over the same store resumes where the last one stopped.
type Controller struct {
	// opts are fixed at creation; their reloadable part is read from live.
	opts   ControllerOptions
	live   atomic.Pointer[Reloadable]
	policy alertPolicy
	tickMu sync.Mutex
	// guardedAt is when each workflow's guardrail was last checked; only
	// Tick touches it, under tickMu.
	guardedAt map[string]time.Time

	sentMu   sync.Mutex
	lastSent map[string]time.Time
}

// Reloadable are the options a configuration reload may change while the
// controller runs; ApplyConfig replaces them as a whole.
type Reloadable struct {
	Executor Executor
	// Validator defaults to NewValidator over the controller's Source.
	Validator *Validator
	// Approvers may decide on gates, abort and roll back.
	Approvers []string
	// ExternalURL is the agent's public URL; workflow pages are below it.
	ExternalURL string
	// Defaults are the settings of workflows created without their own.
	Defaults Settings
	// RollbackAttempts (default 5) and RollbackBackoff (default 30s): see
	// ControllerOptions.
	RollbackAttempts int
	RollbackBackoff  time.Duration
	// IngestionLag is waited after a window ends before it is queried
	// (default 30s).
	IngestionLag time.Duration
	// TickInterval paces Run (default 15s).
	TickInterval time.Duration
}

// withDefaults checks r and fills its unset fields.
func (r Reloadable) withDefaults(src collector.Source) (Reloadable, error) {
	if r.Executor == nil {
		return r, errors.New("workflow controller: an executor is required")
	}
	if r.Validator == nil {
		r.Validator = NewValidator(ValidatorOptions{Source: src})
	}
	d := DefaultSettings()
	setDefault(&r.Defaults.ApprovalTTL, d.ApprovalTTL)
	setDefault(&r.Defaults.PauseTTL, d.PauseTTL)
	setDefault(&r.Defaults.Warmup, d.Warmup)
	setDefault(&r.Defaults.Window, d.Window)
	setDefault(&r.IngestionLag, 30*time.Second)
	setDefault(&r.TickInterval, 15*time.Second)
	setDefault(&r.RollbackBackoff, 30*time.Second)
	if r.RollbackAttempts <= 0 {
		r.RollbackAttempts = 5
	}
	r.Approvers = slices.Clone(r.Approvers)
	return r, nil
}

// NewController checks the options and fills defaults.
func NewController(o ControllerOptions) (*Controller, error) {
	if o.Store == nil || o.Source == nil {
		return nil, errors.New("workflow controller: store and source are required")
	}
	live, err := Reloadable{
		Executor: o.Executor, Validator: o.Validator, Approvers: o.Approvers, ExternalURL: o.ExternalURL,
		Defaults: o.Defaults, RollbackAttempts: o.RollbackAttempts, RollbackBackoff: o.RollbackBackoff, IngestionLag: o.IngestionLag,
		TickInterval: o.TickInterval,
	}.withDefaults(o.Source)
	if err != nil {
		return nil, err
	}
	setDefault(&o.ResendInterval, time.Minute)
	setDefault(&o.ResolvedFor, 5*time.Minute)
	setDefault(&o.OutcomeFor, time.Hour)
	setDefault(&o.ErrorBudget, 10*time.Minute)
	setDefault(&o.RollbackMaxBackoff, 10*time.Minute)
	if o.MaxQueryErrors <= 0 {
		o.MaxQueryErrors = 4
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Controller{
		opts: o,
		policy: alertPolicy{
			agent:  o.AgentName,
			resend: o.ResendInterval, resolvedFor: o.ResolvedFor, outcomeFor: o.OutcomeFor,
		},
		lastSent:  map[string]time.Time{},
		guardedAt: map[string]time.Time{},
	}
	c.live.Store(&live)
	return c, nil
}

// ApplyConfig replaces the reloadable options; workflows in flight use
// them from their next step. On error nothing changes.
func (c *Controller) ApplyConfig(r Reloadable) error {
	live, err := r.withDefaults(c.opts.Source)
	if err != nil {
		return err
	}
	c.live.Store(&live)
	return nil
}

// cur are the reloadable options in force.
func (c *Controller) cur() *Reloadable { return c.live.Load() }

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// CreateRequest proposes a change to a pool.
type CreateRequest struct {
	// ID is generated when empty.
	ID     string
	Change Change
	Pool   []string
	// Current are the values of the setting on pool instances, where the
	// caller knows them. The controller asks the executor for the others;
	// a pool instance whose value stays unknown refuses the request with an
	// *UnknownCurrentError, since a rollback would have nothing to restore.
	Current []CurrentValue
	// Baseline are unchanged instances of the same kind to validate with.
	Baseline  []string
	Requester string
	// Stages default to DefaultStages(Pool).
	Stages []Stage
	// Settings default to the controller's Defaults, field by field.
	Settings *Settings
}

// Create stores a new workflow awaiting start approval and sends the
// approval alert. It returns a *ConflictError (matching ErrConflict) when
// an instance of the pool is in another active workflow.
func (c *Controller) Create(ctx context.Context, r CreateRequest, now time.Time) (Workflow, error) {
	if err := validateCreate(&r); err != nil {
		return Workflow{}, err
	}
	if err := NotOwned(c.opts.Shard, append(slices.Clone(r.Pool), r.Baseline...)); err != nil {
		return Workflow{}, err
	}
	if r.ID == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return Workflow{}, fmt.Errorf("generate workflow id: %w", err)
		}
		r.ID = "wf-" + hex.EncodeToString(b[:])
	}
	defaults := c.cur().Defaults
	settings := defaults
	if r.Settings != nil {
		settings = *r.Settings
		for _, f := range []struct {
			name string
			v    *time.Duration
			def  time.Duration
		}{
			{"approval_ttl", &settings.ApprovalTTL, defaults.ApprovalTTL},
			{"pause_ttl", &settings.PauseTTL, defaults.PauseTTL},
			{"warmup", &settings.Warmup, defaults.Warmup},
			{"window", &settings.Window, defaults.Window},
		} {
			if *f.v < 0 {
				return Workflow{}, fmt.Errorf("%w: settings.%s is negative", ErrInvalidChange, f.name)
			}
			if *f.v == 0 {
				*f.v = f.def
			}
		}
	}
	current, err := c.currentValues(ctx, r)
	if err != nil {
		return Workflow{}, err
	}
	w := Workflow{
		ID: r.ID, Change: r.Change, Pool: r.Pool, Current: current, Baseline: r.Baseline, Requester: r.Requester,
		Settings: settings, Stages: r.Stages, ProposalHash: ProposalHash(r.Change, r.Pool, current, r.Stages),
		State: StateProposed, CreatedAt: now, UpdatedAt: now,
	}
	w, acts, err := Transition(w, Event{Type: EventSubmit, Actor: r.Requester, Reason: "proposed " + r.Change.RecommendationID}, now)
	if err != nil {
		return Workflow{}, err
	}
	if err := c.opts.Store.Create(w); err != nil {
		return Workflow{}, fmt.Errorf("create workflow: %w", err)
	}
	c.recorded(w, acts, now)
	return w, nil
}

func validateCreate(r *CreateRequest) error {
	ch := r.Change
	switch {
	case r.Requester == "":
		return fmt.Errorf("%w: no requester", ErrInvalidChange)
	case ch.Engine == "" || ch.Model == "" || ch.Flag == "":
		return fmt.Errorf("%w: engine, model and flag are required", ErrInvalidChange)
	case ch.To == "":
		return fmt.Errorf("%w: no value to change %s to", ErrInvalidChange, ch.Flag)
	case len(r.Pool) == 0:
		return fmt.Errorf("%w: empty pool", ErrInvalidChange)
	}
	for _, t := range ch.Targets {
		if t.Expected != DirectionIncrease && t.Expected != DirectionDecrease {
			return fmt.Errorf("%w: target %s: expected direction %q, want increase or decrease", ErrInvalidChange, t.Signal, t.Expected)
		}
	}
	seen := map[string]bool{}
	for _, inst := range r.Pool {
		if inst == "" || seen[inst] {
			return fmt.Errorf("%w: empty or repeated pool instance %q", ErrInvalidChange, inst)
		}
		seen[inst] = true
	}
	for _, inst := range r.Baseline {
		if seen[inst] {
			return fmt.Errorf("%w: baseline instance %q is in the pool", ErrInvalidChange, inst)
		}
	}
	if len(r.Stages) == 0 {
		r.Stages = DefaultStages(r.Pool)
	}
	staged := map[string]bool{}
	for i, s := range r.Stages {
		if s.Name == "" || s.Name == "promote" || len(s.Instances) == 0 {
			return fmt.Errorf("%w: stage %d: needs a name other than promote and instances", ErrInvalidChange, i+1)
		}
		for _, inst := range s.Instances {
			if !seen[inst] || staged[inst] {
				return fmt.Errorf("%w: stage %s: instance %q not in the pool or in two stages", ErrInvalidChange, s.Name, inst)
			}
			staged[inst] = true
		}
	}
	return nil
}

// currentValues completes the caller's current values with executor reads
// and checks that every pool instance has one that differs from the new
// value.
func (c *Controller) currentValues(ctx context.Context, r CreateRequest) ([]CurrentValue, error) {
	known := map[string]CurrentValue{}
	for _, cv := range r.Current {
		if cv.Value != "" {
			known[cv.Instance] = cv
		}
	}
	out := make([]CurrentValue, 0, len(r.Pool))
	unknown := &UnknownCurrentError{Flag: r.Change.Flag, Setting: r.Change.Setting}
	for _, inst := range r.Pool {
		cv, ok := known[inst]
		if !ok {
			v, err := c.read(ctx, r.Change, inst)
			if err != nil {
				unknown.Instances = append(unknown.Instances, inst)
				unknown.Reasons = append(unknown.Reasons, err.Error())
				continue
			}
			cv = CurrentValue{Instance: inst, Value: v, Source: FromRead}
		}
		if SameValue(cv.Value, r.Change.To) {
			return nil, fmt.Errorf("%w: %s already has %s=%s", ErrInvalidChange, inst, r.Change.Flag, cv.Value)
		}
		out = append(out, cv)
	}
	if len(unknown.Instances) > 0 {
		return nil, unknown
	}
	return out, nil
}

// read asks the executor for an instance's current value of the setting.
func (c *Controller) read(ctx context.Context, ch Change, inst string) (string, error) {
	rd, ok := c.cur().Executor.(Reader)
	if !ok {
		return "", ErrReadUnsupported
	}
	v, err := rd.Read(ctx, Request{Instance: inst, Operation: OperationRead, Engine: ch.Engine, Model: ch.Model, Flag: ch.Flag, Unit: ch.Unit})
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", fmt.Errorf("the executor read an empty value of %s on %s", ch.Flag, inst)
	}
	return v, nil
}

// Get returns one workflow.
func (c *Controller) Get(_ context.Context, id string) (Workflow, error) {
	return c.opts.Store.Get(id)
}

// List returns the workflows matching f.
func (c *Controller) List(_ context.Context, f Filter) ([]Workflow, error) {
	return c.opts.Store.List(f)
}

// errUnchanged aborts a store update that has nothing to write.
var errUnchanged = errors.New("unchanged")

// recorded follows a stored transition: metrics, log and immediate alerts.
func (c *Controller) recorded(w Workflow, acts []Action, now time.Time) {
	if n := len(w.Events); n > 0 {
		ev := w.Events[n-1]
		c.opts.Metrics.Transitions.WithLabelValues(ev.From.String(), ev.To.String()).Inc()
		c.opts.Logger.Info("Workflow transition", "workflow", w.ID, "event", ev.Type,
			"from", ev.From, "to", ev.To, "stage", ev.Stage, "actor", ev.Actor, "reason", ev.Reason)
		if ev.To == StateNeedsAttention {
			c.opts.Logger.Error("Rollback failed: instances are still changed; retry the rollback or mark them restored by hand",
				"workflow", w.ID, "flag", w.Change.Flag, "still_changed", strings.Join(w.Changed(), ","), "reason", ev.Reason)
		}
	}
	for _, a := range acts {
		if a.Kind == ActionNotify {
			c.sendAlerts(w, now, true)
		}
	}
}

// sendAlerts queues w's alerts that are due, or all of them with force.
func (c *Controller) sendAlerts(w Workflow, now time.Time, force bool) {
	if c.opts.Alerts == nil {
		return
	}
	var due []*notifier.Alert
	c.sentMu.Lock()
	policy := c.policy
	policy.externalURL = c.cur().ExternalURL
	for _, a := range policy.alerts(w, now) {
		k := a.key()
		if last, ok := c.lastSent[k]; force || !ok || now.Sub(last) >= c.opts.ResendInterval {
			c.lastSent[k] = now
			due = append(due, a.notifierAlert())
		}
	}
	c.sentMu.Unlock()
	if len(due) > 0 {
		c.opts.Alerts.Send(due...)
	}
}

// forgetSent drops send times of alerts no workflow can still want sent.
func (c *Controller) forgetSent(now time.Time) {
	horizon := max(c.opts.ResolvedFor, c.opts.OutcomeFor) + c.opts.ResendInterval
	c.sentMu.Lock()
	defer c.sentMu.Unlock()
	for k, t := range c.lastSent {
		if now.Sub(t) > horizon {
			delete(c.lastSent, k)
		}
	}
}

// NotOwned refuses instances of other shards than sh, naming the shard
// of each; it matches ErrInvalidChange.
func NotOwned(sh shard.Shard, instances []string) error {
	var foreign []string
	for _, inst := range instances {
		if !sh.Owns(inst) {
			foreign = append(foreign, fmt.Sprintf("%s (shard %d)", inst, sh.Of(inst)))
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	return fmt.Errorf("%w: this agent is %s and owns no workflow on %s; propose the change on the agent of its shard, which collects its signals",
		ErrInvalidChange, sh, strings.Join(foreign, ", "))
}

// Run calls Tick every TickInterval in force until ctx is done. It first
// names the active workflows that hold instances of other shards (left
// from a run with another --shard.count): this agent no longer collects
// their signals, so they should be finished or aborted.
func (c *Controller) Run(ctx context.Context) {
	if ws, err := c.opts.Store.List(Filter{Active: true, NoEvents: true}); err == nil {
		for _, w := range ws {
			if err := NotOwned(c.opts.Shard, w.Pool); err != nil {
				c.opts.Logger.Error("Active workflow holds instances of another shard; abort it or finish it with the agent's previous --shard.count", "workflow", w.ID, "err", err)
			}
		}
	}
	t := time.NewTimer(c.cur().TickInterval)
	defer t.Stop()
	for ctx.Err() == nil {
		if err := c.Tick(ctx, c.opts.Now()); err != nil && ctx.Err() == nil {
			c.opts.Logger.Warn("Workflow tick failed", "err", err)
		}
		t.Reset(c.cur().TickInterval)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// Tick takes every step due at now for every active workflow, then sends
// due alerts. A step interrupted by ctx leaves its intent recorded and is
// repeated by a later Tick. Errors of single workflows are joined.
func (c *Controller) Tick(ctx context.Context, now time.Time) error {
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	// Finished workflows matter only while their last alerts are sent.
	horizon := max(c.opts.ResolvedFor, c.opts.OutcomeFor+c.opts.ResolvedFor)
	ws, err := c.opts.Store.List(Filter{FinishedAfter: now.Add(-horizon)})
	if err != nil {
		return err
	}
	c.forgetSent(now)
	var errs []error
	for _, w := range ws {
		if w.State.Terminal() {
			delete(c.guardedAt, w.ID)
			c.sendAlerts(w, now, false)
			continue
		}
		// Re-read: a decision or abort may have moved it since the list.
		if w, err = c.opts.Store.Get(w.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		// A workflow takes at most one step per state it passes through.
		for range len(stateNames) {
			if ctx.Err() != nil {
				return errors.Join(append(errs, ctx.Err())...)
			}
			next, moved, err := c.step(ctx, w, now)
			if err != nil {
				errs = append(errs, fmt.Errorf("workflow %s in %s: %w", w.ID, w.State, err))
				break
			}
			w = next
			if !moved {
				break
			}
		}
		c.sendAlerts(w, now, false)
	}
	return errors.Join(errs...)
}

// step takes the step due in w's state. moved reports a transition.
func (c *Controller) step(ctx context.Context, w Workflow, now time.Time) (Workflow, bool, error) {
	state := w.State
	fire := func(t EventType, reason string, mutate func(*Workflow)) (Workflow, bool, error) {
		n, err := c.fire(ctx, w.ID, &state, Event{Type: t, Actor: "perfagent", Reason: reason}, now, mutate)
		if errors.Is(err, errUnchanged) {
			n, err = c.opts.Store.Get(w.ID)
			return n, err == nil && n.State != state, err
		}
		return n, err == nil, err
	}
	switch w.State {
	case StateWarmup, StateAnalysing, StateStageGate, StateVerifying:
		n, moved, handled, err := c.guard(ctx, w, now, fire)
		if handled || err != nil {
			if errors.Is(err, errUnchanged) {
				n, err = c.opts.Store.Get(w.ID)
				return n, err == nil, err
			}
			return n, moved, err
		}
		w = n
	}
	switch w.State {
	case StateAwaitingApproval, StateStageGate, StatePaused:
		if g, ok := w.OpenGate(); ok && !now.Before(g.ExpiresAt) {
			return fire(EventExpire, "gate "+g.Name+" expired", nil)
		}
	case StatePreflight:
		return c.preflight(ctx, w, now, fire)
	case StateApplying, StatePromoting:
		return c.apply(ctx, w, now, fire)
	case StateWarmup:
		if !now.Before(w.Deadline) {
			return fire(EventWarmupDone, "warm-up over", nil)
		}
	case StateAnalysing, StateVerifying:
		return c.analyse(ctx, w, now, fire)
	case StateRollingBack:
		return c.rollback(ctx, w, now, fire)
	}
	return w, false, nil
}
