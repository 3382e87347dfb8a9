package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/cost"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

// Options are the components a Pipeline puts in order. Their owner
// configures and closes them.
type Options struct {
	Collector *collector.Collector
	// Store is the local TSDB: SLO target series are written to it, and
	// the signal history recommendations read comes from it.
	Store *signalstore.Store
	Rules *rules.Manager
	// Recommender sizes recommendations after every rule evaluation; nil
	// ends each cycle with the rules (replays that score detection only).
	Recommender *recommender.Recommender
	// Own, when set, gathers the agent's own metrics (what its /metrics
	// serves). They are appended to the store after every cycle, with
	// their own labels only, so that PromQL over the store (the agent's
	// query API, Grafana's dashboards) finds them. Signals and SLO targets,
	// which the cycle writes itself, are left out.
	Own prometheus.Gatherer
	// Settings, when set, writes the instances' settings with the
	// agent's own metrics (perfagent_setting_info), from their series
	// kept from one cycle to the next rather than through Own: a large
	// fleet has tens of thousands of them.
	Settings *collector.SettingsExporter
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Config is what a Pipeline itself reads on every cycle.
type Config struct {
	// SLO are the targets written as series at every cycle's time, before
	// the rules that compare signals with them are evaluated.
	SLO []config.SLOTarget
	// Interval is the evaluation interval: the step of signal backfills,
	// of rule evaluation over history, and of the signal history that
	// recommendations read.
	Interval time.Duration
	// Settle is how long the rules wait, after a failed collection, once
	// the source answers again: a signal the source computes over a
	// window (a rate over the collector's rate window) is missing or
	// partial until that window holds data from after the outage, and a
	// rule evaluated on it would resolve a bottleneck, or raise one, for
	// want of data. Zero evaluates the rules at the first cycle back.
	Settle time.Duration
	// Pricing prices the instances and recommendations; nil prices
	// nothing.
	Pricing *cost.Pricing
	// Prefer is the ranking preference of a pass whose request states
	// none (config.PreferLatency or config.PreferCost).
	Prefer string
}

// Pipeline runs perfagent's cycle: collect, write the SLO targets,
// evaluate the bottleneck rules, recommend. It keeps the latest
// recommendation report. It is safe for concurrent use.
type Pipeline struct {
	coll     *collector.Collector
	store    *signalstore.Store
	rules    *rules.Manager
	rec      *recommender.Recommender
	own      prometheus.Gatherer
	settings *collector.SettingsExporter
	logger   *slog.Logger

	mtx    sync.RWMutex
	cfg    Config
	latest recommender.Report
	// cycles counts the cycles whose every step has run, reloads the
	// configurations put in force (Generation).
	cycles, reloads atomic.Uint64
	// ownPageSize is the size of the last cycle's own-metrics page, so the
	// next one (megabytes in a large fleet) is written without regrowing.
	ownPageSize atomic.Int64
}

// New returns a Pipeline over the components of o, configured with cfg.
func New(o Options, cfg Config) (*Pipeline, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{coll: o.Collector, store: o.Store, rules: o.Rules, rec: o.Recommender, own: o.Own, settings: o.Settings, logger: logger}
	if err := p.ApplyConfig(cfg); err != nil {
		return nil, err
	}
	return p, nil
}

// ApplyConfig swaps in cfg for the next cycle; on error nothing changes.
func (p *Pipeline) ApplyConfig(cfg Config) error {
	commit, err := p.PrepareConfig(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareConfig checks cfg without touching the one in force; the
// returned commit puts it in force from the next cycle.
func (p *Pipeline) PrepareConfig(cfg Config) (commit func(), err error) {
	if cfg.Interval <= 0 {
		return nil, fmt.Errorf("evaluation interval must be greater than zero, got %s", cfg.Interval)
	}
	if cfg.Settle < 0 {
		return nil, fmt.Errorf("settling time must not be negative, got %s", cfg.Settle)
	}
	if err := config.ValidateSLOTargets(cfg.SLO); err != nil {
		return nil, err
	}
	if err := config.CheckPrefer(cfg.Prefer); err != nil {
		return nil, fmt.Errorf("ranking preference: %w", err)
	}
	return func() {
		p.mtx.Lock()
		defer p.mtx.Unlock()
		p.cfg = cfg
	}, nil
}

func (p *Pipeline) config() Config {
	p.mtx.RLock()
	defer p.mtx.RUnlock()
	return p.cfg
}

// Cycle runs one cycle at now and returns its snapshot. A failed
// collection ends the cycle with its error; a later step that fails does
// not stop the steps after it, and its error is returned with the
// snapshot.
func (p *Pipeline) Cycle(ctx context.Context, now time.Time) (*collector.Snapshot, error) {
	snap, err := p.coll.Cycle(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("collecting signals: %w", err)
	}
	return snap, errors.Join(p.afterCollection(ctx, snap)...)
}

// Run runs a cycle every evaluation interval of the configuration in
// force, at times of the clock now aligned to the interval, until ctx
// ends. Failed steps are logged, and so is a cycle that outlasts its
// interval: the next one then starts late, at the interval after. With
// history > 0, that much signal history before the first cycle is
// computed from the source (remote mode's backfill).
func (p *Pipeline) Run(ctx context.Context, now func() time.Time, history time.Duration) {
	// History the store holds already, from before a restart, is not
	// computed again: it starts after the newest sample there is before
	// the first cycle.
	held, holds := p.store.MaxTime()
	first := history > 0
	var backfill sync.WaitGroup
	p.coll.Run(ctx, func() time.Duration { return p.config().Interval }, now, func(ctx context.Context, snap *collector.Snapshot) {
		if first {
			// The history is computed after the first cycle that reached
			// the source, beside the next ones, so the agent is ready one
			// cycle after its start however long the history takes to
			// compute; the store takes the older samples out of order.
			first = false
			from := snap.Time.Add(-history)
			if holds && held.After(from) {
				from = held.Add(p.config().Interval)
			}
			backfill.Go(func() { p.backfillHistory(ctx, from, snap.Time) })
		}
		errs := p.afterCollection(ctx, snap)
		if ctx.Err() != nil {
			// Stopping: steps cut short are not failures worth a log line.
			return
		}
		for _, err := range errs {
			p.logger.Warn("Pipeline step failed", "err", err)
		}
		// A cycle starts at its snapshot's time.
		took, interval := now().Sub(snap.Time), p.config().Interval
		if took > interval {
			p.logger.Warn("Cycle outlasted the evaluation interval; the next one starts late", "duration", took, "interval", interval)
			return
		}
		p.logger.Debug("Cycle completed", "duration", took, "interval", interval)
	})
	backfill.Wait()
}

// backfillHistory computes signal history over [from, until) at the
// evaluation interval, until being the first cycle's time.
func (p *Pipeline) backfillHistory(ctx context.Context, from, until time.Time) {
	step := p.config().Interval
	n, err := p.coll.Backfill(ctx, from, until.Add(-step), step)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		p.logger.Warn("Backfill of signal history failed; history starts at the first cycle", "err", err)
	default:
		p.logger.Info("Backfilled signal history", "samples", n, "from", from, "until", until)
		// The history came out of order; held in memory it would cost as
		// much as the signals of the backfill window until the head's next
		// compaction.
		if err := p.store.CompactOutOfOrder(ctx); err != nil && ctx.Err() == nil {
			p.logger.Warn("Writing the backfilled history to disk failed; it stays in memory until the next compaction", "err", err)
		}
	}
}

// afterCollection runs the steps that follow a collection, at the
// snapshot's time: the rules read the signals just stored and the SLO
// targets of the same time, the recommendations read the rules' result.
// Rules are not evaluated while the source is down (there is no
// snapshot) nor while its signals settle after it returns (Config.Settle).
func (p *Pipeline) afterCollection(ctx context.Context, snap *collector.Snapshot) []error {
	var errs []error
	if err := p.appendSLOTargets(ctx, snap.Time); err != nil {
		errs = append(errs, err)
	}
	if back := p.coll.BackAt(); !back.IsZero() && snap.Time.Sub(back) < p.config().Settle {
		// The bottlenecks keep the state they had when the source went
		// away, as they did while it was away, until its signals are
		// whole again.
		p.logger.Debug("Source back after an outage; rules wait for its signals to settle", "back", back, "settle", p.config().Settle)
	} else {
		p.rules.Eval(ctx, snap.Time)
	}
	if p.rec != nil {
		rep, err := p.Recommend(ctx, snap.Time, RecommendRequest{})
		if err != nil {
			errs = append(errs, fmt.Errorf("computing recommendations: %w", err))
		} else {
			p.mtx.Lock()
			p.latest = rep
			p.mtx.Unlock()
		}
	}
	if err := p.appendOwnMetrics(ctx, snap); err != nil {
		errs = append(errs, err)
	}
	p.cycles.Add(1)
	return errs
}

// appendOwnMetrics writes the agent's own metrics, its up series and the
// instances' settings to the store at the snapshot's time, except the
// series the cycle wrote itself: the signals recorded by the profiles
// (the snapshot's, and the catalog's when a collection found none) and
// the SLO targets.
func (p *Pipeline) appendOwnMetrics(ctx context.Context, snap *collector.Snapshot) error {
	if p.own == nil {
		return nil
	}
	// The forecasts are recorded by the rules themselves.
	written := map[string]bool{rules.SLOTTFTP95Series: true, rules.SLOITLP95Series: true, rules.SLOErrorRatioSeries: true, rules.SaturationETASeries: true}
	for _, s := range signals.All() {
		written[s.Name] = true
	}
	for _, s := range snap.Samples {
		written[s.Labels.Get(model.MetricNameLabel)] = true
	}
	// A gatherer that fails in part still returns what it could gather.
	mfs, gatherErr := p.own.Gather()
	// The up series a Prometheus scraping the agent would write: the
	// agent that writes it is up.
	page := bytes.NewBuffer(make([]byte, 0, p.ownPageSize.Load()))
	page.WriteString("up 1\n")
	enc := expfmt.NewEncoder(page, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if written[mf.GetName()] {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encoding the agent's own metric %s: %w", mf.GetName(), err)
		}
	}
	p.ownPageSize.Store(int64(page.Len()))
	app := p.store.Appender(ctx)
	if err := collector.AppendExposition(app, page.Bytes(), snap.Time, labels.EmptyLabels()); err != nil {
		_ = app.Rollback()
		return fmt.Errorf("writing the agent's own metrics: %w", err)
	}
	if p.settings != nil {
		if err := p.settings.Append(app, snap); err != nil {
			_ = app.Rollback()
			return fmt.Errorf("writing the instances' settings: %w", err)
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("writing the agent's own metrics: %w", err)
	}
	if gatherErr != nil {
		return fmt.Errorf("gathering the agent's own metrics: %w", gatherErr)
	}
	return nil
}

func (p *Pipeline) appendSLOTargets(ctx context.Context, t time.Time) error {
	app := p.store.Appender(ctx)
	if err := rules.AppendSLOTargets(app, t.UnixMilli(), p.config().SLO); err != nil {
		_ = app.Rollback()
		return fmt.Errorf("writing SLO targets: %w", err)
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("writing SLO targets: %w", err)
	}
	return nil
}

// EvaluateHistory brings the rules up to now over the history since from:
// it backfills signals over [from, now-interval] and evaluates the rules
// at every interval from from until now, each time after writing the SLO
// targets. A rule whose `for` fits in now-from can then fire at the cycle
// of now.
func (p *Pipeline) EvaluateHistory(ctx context.Context, from, now time.Time) error {
	step := p.config().Interval
	if _, err := p.coll.Backfill(ctx, from, now.Add(-step), step); err != nil {
		return err
	}
	for t := from; t.Before(now); t = t.Add(step) {
		if err := p.appendSLOTargets(ctx, t); err != nil {
			return err
		}
		p.rules.Eval(ctx, t)
	}
	return nil
}

// Bottlenecks are the active bottlenecks of the last evaluation.
func (p *Pipeline) Bottlenecks() []rules.Bottleneck { return p.rules.Bottlenecks() }

// Costs prices the instances of the last collection; nil before the
// first or without prices. An instance is under-utilised while its B6
// bottleneck fires.
func (p *Pipeline) Costs() []cost.Instance {
	pr := p.config().Pricing
	if pr == nil {
		return nil
	}
	return pr.Instances(p.coll.Latest(), p.underutilized())
}

func (p *Pipeline) underutilized() func(string) bool {
	idle := map[string]bool{}
	for _, b := range p.rules.Bottlenecks() {
		if b.ID == underutilizedID && b.State == rules.StateFiring {
			idle[b.Instance] = true
		}
	}
	return func(instance string) bool { return idle[instance] }
}

// underutilizedID is the bottleneck of over-provisioned instances, whose
// idle GPUs are priced.
const underutilizedID = "B6"

// Latest is the recommendation report of the last cycle.
func (p *Pipeline) Latest() recommender.Report {
	p.mtx.RLock()
	defer p.mtx.RUnlock()
	return p.latest
}

// LatestRecommendations are the recommendations of the last cycle.
func (p *Pipeline) LatestRecommendations() []recommender.Recommendation {
	return p.Latest().Recommendations
}

// Rule is a loaded alerting rule, as far as the pipeline's callers need
// to know it.
type Rule struct {
	Name string
	// Bottleneck is labels.bottleneck, or empty.
	Bottleneck string
	// Forecast is labels.forecast: the resource whose saturation the rule
	// warns of ahead of Bottleneck; empty for a rule that detects it.
	Forecast string
	// For is how long the condition must hold before the rule fires;
	// before that its bottlenecks are pending.
	For time.Duration
	// Interval is how often the rule's group is evaluated.
	Interval time.Duration
}

// Rules lists the loaded alerting rules, in file and group order.
func (p *Pipeline) Rules() []Rule {
	var out []Rule
	for _, g := range p.rules.RuleGroups() {
		for _, ar := range g.AlertingRules() {
			_, lset := p.rules.Rule(ar)
			out = append(out, Rule{Name: ar.Name(), Bottleneck: lset.Get(rules.LabelBottleneck), Forecast: lset.Get(rules.LabelForecast), For: ar.HoldDuration(), Interval: g.Interval()})
		}
	}
	return out
}
