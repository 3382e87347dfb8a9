package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/signals"
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Queryable and Appendable are the storage ALERTS and
	// ALERTS_FOR_STATE are read from and written to, and QueryFunc
	// evaluates the rules' expressions, as in upstream's ManagerOptions.
	// Without a QueryFunc the manager loads and validates rules, and Eval
	// does nothing.
	Queryable  storage.Queryable
	Appendable storage.AppendableV2
	QueryFunc  promrules.QueryFunc
	// Engine evaluates, over Queryable narrowed to some models, a Detect
	// asked for instances of those models (DetectOptions.Models); nil
	// evaluates every Detect over the whole store with QueryFunc.
	Engine *promql.Engine
	// Registerer receives upstream's rule-group metrics
	// (prometheus_rule_group_*); nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Metrics defaults to unregistered metrics.
	Metrics *Metrics
	// NotifyFunc receives alerts due to be sent; nil sends nothing.
	NotifyFunc NotifyFunc
	// EvaluationInterval is how often Eval is called (the collector's
	// evaluation interval); it sets how long a sent alert stays valid.
	// Default 15s.
	EvaluationInterval time.Duration
	// ExternalURL is the agent's URL, for templates and generator URLs.
	ExternalURL *url.URL
	// Disabled are alert names switched off (built-in or not).
	Disabled []string
	// OutageTolerance is how long the agent may have been down for `for`
	// state to be restored from ALERTS_FOR_STATE. Default 1h.
	OutageTolerance time.Duration
	// ForGracePeriod is the least time a restored pending alert still
	// waits before it fires. Zero (the default) lets it resume where it
	// stopped: signal history is backfilled at start, so rules see real
	// data from their first evaluation.
	ForGracePeriod time.Duration
	// ResendDelay is how often a firing alert is sent again. Default 1m.
	ResendDelay time.Duration
}

// Manager evaluates bottleneck rules with the upstream rule groups
// against the local TSDB, at times its caller chooses (right after each
// collection), and keeps the active bottlenecks of the last evaluation.
// It has no timers of its own.
type Manager struct {
	// evaluating is whether a QueryFunc was given.
	evaluating bool
	logger     *slog.Logger
	metrics    *Metrics
	loader     *Loader
	notify     NotifyFunc
	interval   time.Duration
	extURL     string
	promOpts   *promrules.ManagerOptions
	engine     *promql.Engine

	mtx        sync.Mutex // serializes Update and Eval
	files      []*RuleFile
	groups     []*promrules.Group
	static     ruleStatics              // of groups
	evidence   evidenceSources          // of groups' alerting rules
	restoring  map[*promrules.Group]int // evaluations done before RestoreForState
	tombstones []*promrules.Group       // removed groups whose series go stale at the next Eval
	evaluated  bool
	firing     map[string]bool // alerts firing at the last Eval, by label set

	snapMtx     sync.RWMutex
	published   []*promrules.Group
	pubStatic   ruleStatics
	bottlenecks []Bottleneck
	// evaluations are the groups' last evaluations, by which Eval skips
	// a group whose interval has not passed. Upstream records them in its
	// own evaluation loop, which the manager does not run. Written with
	// mtx held too, so Eval reads them under mtx alone.
	evaluations map[*promrules.Group]GroupEvaluation
}

// GroupEvaluation is a rule group's last evaluation.
type GroupEvaluation struct {
	// At is the evaluation time.
	At time.Time
	// Took is how long it took.
	Took time.Duration
}

// NewManager returns a Manager without rules; call Update to load them.
func NewManager(o ManagerOptions) *Manager {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	metrics := o.Metrics
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	interval := o.EvaluationInterval
	if interval <= 0 {
		interval = 15 * time.Second
	}
	tolerance := o.OutageTolerance
	if tolerance <= 0 {
		tolerance = time.Hour
	}
	resend := o.ResendDelay
	if resend <= 0 {
		resend = time.Minute
	}
	m := &Manager{
		evaluating:  o.QueryFunc != nil,
		engine:      o.Engine,
		logger:      logger,
		metrics:     metrics,
		loader:      NewLoader(LoaderOptions{Disabled: o.Disabled, Logger: logger}),
		notify:      o.NotifyFunc,
		interval:    interval,
		evidence:    evidenceSources{},
		restoring:   map[*promrules.Group]int{},
		firing:      map[string]bool{},
		evaluations: map[*promrules.Group]GroupEvaluation{},
	}
	if o.ExternalURL != nil {
		m.extURL = o.ExternalURL.String()
	}
	m.promOpts = &promrules.ManagerOptions{
		ExternalURL:     o.ExternalURL,
		NotifyFunc:      m.sendAlerts,
		Context:         context.Background(),
		Logger:          logger,
		OutageTolerance: tolerance,
		ForGracePeriod:  o.ForGracePeriod,
		ResendDelay:     resend,
		Metrics:         promrules.NewGroupMetrics(o.Registerer),
		Parser:          newParser(),
		AppendableV2:    o.Appendable,
		Queryable:       o.Queryable,
	}
	if o.QueryFunc != nil {
		m.promOpts.QueryFunc = shortCircuit(o.QueryFunc)
	}
	return m
}

// Config is what a configuration (re)load gives the manager.
type Config struct {
	// Files are rule files (paths, or BuiltinFiles names).
	Files []string
	// Interval is the evaluation interval; zero keeps the current one.
	Interval time.Duration
	// Disabled are alert names switched off.
	Disabled []string
}

// Update replaces the rules with those of files, keeping the interval and
// the disabled names. See Prepare.
func (m *Manager) Update(files []string) error {
	m.mtx.Lock()
	cfg := Config{Files: files, Interval: m.interval, Disabled: m.loader.Disabled()}
	m.mtx.Unlock()
	commit, err := m.Prepare(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare loads and checks the rules of cfg without touching the running
// ones; the returned commit puts them in force. On error the error lists
// every problem with file:line:col. Once committed, groups whose content
// and interval did not change keep running untouched; changed groups take
// over the alert state of their predecessor; removed groups' series are
// marked stale at the next Eval.
func (m *Manager) Prepare(cfg Config) (commit func(), err error) {
	loader := NewLoader(LoaderOptions{Disabled: cfg.Disabled, Logger: m.logger})
	loaded, errs := loader.Load(cfg.Files)
	if len(errs) > 0 {
		return nil, fmt.Errorf("loading bottleneck rules, previous rules kept: %w", errors.Join(errs...))
	}
	interval := cfg.Interval
	if interval <= 0 {
		m.mtx.Lock()
		interval = m.interval
		m.mtx.Unlock()
	}
	return func() { m.install(loader, loaded, interval, len(cfg.Files)) }, nil
}

// install swaps in rules that Prepare loaded and checked.
func (m *Manager) install(loader *Loader, loaded []*RuleFile, interval time.Duration, files int) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	restore := !m.evaluated
	groups, static, err := buildGroups(loaded, interval, m.promOpts, !restore, labels.EmptyLabels(), m.extURL, m.logger)
	if err != nil {
		// The loader parsed the same expressions with the same parser.
		m.logger.Error("Bottleneck rules that were checked failed to build; previous rules kept", "err", err)
		return
	}
	m.loader = loader
	m.interval = interval
	m.warnUnmatchedDisabled(loaded)

	old := make(map[string]*promrules.Group, len(m.groups))
	for _, g := range m.groups {
		old[promrules.GroupKey(g.File(), g.Name())] = g
	}
	next := make([]*promrules.Group, 0, len(groups))
	restoring := map[*promrules.Group]int{}
	for _, ng := range groups {
		key := promrules.GroupKey(ng.File(), ng.Name())
		og, ok := old[key]
		delete(old, key)
		if ok && og.Equals(ng) && sameStatic(og, m.static, static) {
			next = append(next, og)
			if n, pending := m.restoring[og]; pending {
				restoring[og] = n
			}
			continue
		}
		if ok {
			ng.CopyState(og)
		}
		if restore {
			restoring[ng] = 0
		}
		next = append(next, ng)
	}
	for _, og := range old {
		tomb := promrules.NewGroup(promrules.GroupOptions{Name: og.Name(), File: og.File(), Interval: og.Interval(), Opts: m.promOpts})
		tomb.CopyState(og)
		m.tombstones = append(m.tombstones, tomb)
	}
	m.files = loaded
	m.groups = next
	m.static = static
	m.restoring = restoring
	m.evidence = evidenceSources{}
	alerts := 0
	for _, g := range next {
		alerts += len(g.AlertingRules())
	}
	m.snapMtx.Lock()
	m.published = slices.Clone(next)
	m.pubStatic = static
	evaluations := map[*promrules.Group]GroupEvaluation{}
	for _, g := range next {
		if e, ok := m.evaluations[g]; ok {
			evaluations[g] = e
		}
	}
	m.evaluations = evaluations
	m.snapMtx.Unlock()
	m.logger.Info("Bottleneck rules loaded", "files", files, "groups", len(next), "alerts", alerts)
}

func (m *Manager) warnUnmatchedDisabled(files []*RuleFile) {
	matched := map[string]bool{}
	for _, f := range files {
		for _, n := range f.disabled {
			matched[n] = true
		}
	}
	for n := range m.loader.disabled {
		if !matched[n] {
			m.logger.Warn("Disabled rule matches no alerting rule", "alert", n)
		}
	}
}

// Eval evaluates the groups at ts, restores `for` state after the second
// evaluation following the first load (as Prometheus does after a
// restart), and refreshes the active bottlenecks with their evidence.
// Call it right after the collection of ts, once the SLO target series of
// ts are written (AppendSLOTargets). A group whose own interval is longer
// than the evaluation interval is evaluated only once that interval has
// passed (within half an evaluation interval).
func (m *Manager) Eval(ctx context.Context, ts time.Time) {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	if !m.evaluating {
		return
	}
	start := time.Now()
	for _, g := range m.groups {
		if last, ok := m.evaluations[g]; ok && ts.Sub(last.At) < g.Interval()-m.interval/2 {
			continue
		}
		groupStart := time.Now()
		g.Eval(ctx, ts)
		if ctx.Err() != nil {
			return
		}
		m.recordEvaluation(g, GroupEvaluation{At: ts, Took: time.Since(groupStart)})
		for _, r := range g.Rules() {
			if r.LastError() != nil {
				m.metrics.EvaluationFailures.Inc()
			}
		}
		if n, ok := m.restoring[g]; ok {
			if n+1 >= 2 {
				g.RestoreForState(ts)
				delete(m.restoring, g)
			} else {
				m.restoring[g] = n + 1
			}
		}
	}
	for _, t := range m.tombstones {
		t.Eval(ctx, ts)
		m.forgetGroupMetrics(t)
	}
	m.tombstones = nil
	m.evaluated = true

	bs := m.collect(ctx, ts, m.groups, m.static, m.evidence)
	firing := map[string]bool{}
	for _, b := range bs {
		if b.State != StateFiring {
			continue
		}
		key := b.Labels.String()
		firing[key] = true
		if !m.firing[key] {
			m.metrics.BottlenecksDetected.WithLabelValues(b.Rule, string(b.Category), string(b.Severity), b.Instance, b.Engine, b.Model).Inc()
		}
	}
	m.firing = firing
	m.metrics.EvaluationDuration.Observe(time.Since(start).Seconds())

	m.snapMtx.Lock()
	m.bottlenecks = bs
	m.snapMtx.Unlock()
}

// recordEvaluation keeps e as g's last evaluation and sets upstream's
// group metrics as its own evaluation loop would.
func (m *Manager) recordEvaluation(g *promrules.Group, e GroupEvaluation) {
	key := promrules.GroupKey(g.File(), g.Name())
	var rulesTook time.Duration
	for _, r := range g.Rules() {
		rulesTook += r.GetEvaluationDuration()
	}
	gm := m.promOpts.Metrics
	gm.IterationDuration.Observe(e.Took.Seconds())
	gm.IterationDurationHistogram.Observe(e.Took.Seconds())
	gm.IterationsScheduled.WithLabelValues(key).Inc()
	gm.GroupLastEvalTime.WithLabelValues(key).Set(float64(e.At.UnixNano()) / 1e9)
	gm.GroupLastDuration.WithLabelValues(key).Set(e.Took.Seconds())
	gm.GroupLastRuleDurationSum.WithLabelValues(key).Set(rulesTook.Seconds())
	m.snapMtx.Lock()
	m.evaluations[g] = e
	m.snapMtx.Unlock()
}

// forgetGroupMetrics deletes the series of upstream's group metrics of
// g, a removed group, as upstream does when it stops a group.
func (m *Manager) forgetGroupMetrics(g *promrules.Group) {
	key := promrules.GroupKey(g.File(), g.Name())
	gm := m.promOpts.Metrics
	for _, v := range []*prometheus.CounterVec{gm.IterationsMissed, gm.IterationsScheduled, gm.EvalTotal, gm.EvalFailures} {
		v.DeleteLabelValues(key)
	}
	for _, v := range []*prometheus.GaugeVec{gm.GroupInterval, gm.GroupLastEvalTime, gm.GroupLastDuration, gm.GroupLastRuleDurationSum, gm.GroupLastRestoreDuration, gm.GroupRules, gm.GroupSamples} {
		v.DeleteLabelValues(key)
	}
}

// GroupEvaluation returns the last evaluation of g, a group of
// RuleGroups, and false when it has not been evaluated.
func (m *Manager) GroupEvaluation(g *promrules.Group) (GroupEvaluation, bool) {
	m.snapMtx.RLock()
	defer m.snapMtx.RUnlock()
	e, ok := m.evaluations[g]
	return e, ok
}

// collect turns the active alerts of groups into bottlenecks, sorted by
// severity (highest first), state (firing first), rule and labels.
func (m *Manager) collect(ctx context.Context, ts time.Time, groups []*promrules.Group, static ruleStatics, sources evidenceSources) []Bottleneck {
	var out []Bottleneck
	queries := &evidenceQueries{query: m.promOpts.QueryFunc, ts: ts, logger: m.logger, results: map[string]evidenceResult{}}
	for _, g := range groups {
		for _, ar := range g.AlertingRules() {
			key := ruleKey(ar.Name(), ar.Query().String())
			src := sources.of(ar)
			for _, a := range ar.ActiveAlerts() {
				var st State
				switch a.State {
				case promrules.StatePending:
					st = StatePending
				case promrules.StateFiring:
					st = StateFiring
				default:
					continue
				}
				out = append(out, Bottleneck{
					Rule:            ar.Name(),
					ID:              a.Labels.Get(LabelBottleneck),
					Category:        Category(a.Labels.Get(LabelCategory)),
					Severity:        Severity(a.Labels.Get(LabelSeverity)),
					State:           st,
					Instance:        a.Labels.Get(signals.LabelInstance),
					Engine:          a.Labels.Get(signals.LabelEngine),
					Model:           a.Labels.Get(signals.LabelModel),
					Labels:          a.Labels,
					ActiveAt:        a.ActiveAt,
					FiredAt:         a.FiredAt,
					Value:           a.Value,
					Summary:         static.get(key, a.Annotations, AnnotationSummary),
					Description:     static.get(key, a.Annotations, AnnotationDescription),
					RunbookURL:      static.get(key, a.Annotations, AnnotationRunbookURL),
					Recommendations: Recommendations(static.get(key, a.Annotations, AnnotationRecommend)),
					Evidence:        queries.evidence(ctx, src.reads(a.Labels)),
				})
			}
			src.rotate()
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Severity.rank() != b.Severity.rank() {
			return a.Severity.rank() > b.Severity.rank()
		}
		if a.State != b.State {
			return a.State == StateFiring
		}
		return labels.Compare(a.Labels, b.Labels) < 0
	})
	return out
}

// evidenceQueries runs each evidence query once per evaluation and keeps
// its result, by instance: the alerts of one rule, a thousand in a large
// fleet, read the same few selectors, each alert its own series of them,
// and a query answers for every instance of a model.
type evidenceQueries struct {
	query   promrules.QueryFunc
	ts      time.Time
	logger  *slog.Logger
	results map[string]evidenceResult
}

// evidenceResult is the answer to one evidence query.
type evidenceResult struct {
	all        promql.Vector
	byInstance map[string]promql.Vector
}

// get returns the series of the result of q at the evaluation's time
// that have the given instance label, every series when instance is "",
// and nil when the query fails.
func (e *evidenceQueries) get(ctx context.Context, q, instance string) promql.Vector {
	r, ok := e.results[q]
	if !ok {
		v, err := e.query(ctx, q, e.ts)
		if err != nil {
			e.logger.Debug("Evidence query failed", "query", q, "err", err)
		}
		r = evidenceResult{all: v, byInstance: map[string]promql.Vector{}}
		for _, s := range v {
			inst := s.Metric.Get(signals.LabelInstance)
			r.byInstance[inst] = append(r.byInstance[inst], s)
		}
		e.results[q] = r
	}
	if instance == "" {
		return r.all
	}
	return r.byInstance[instance]
}

// evidenceSources are the evidence of each alerting rule's bottlenecks.
type evidenceSources map[*promrules.AlertingRule]*ruleEvidence

// of returns the evidence of ar, read from its expression's selectors on
// first use.
func (s evidenceSources) of(ar *promrules.AlertingRule) *ruleEvidence {
	r, ok := s[ar]
	if !ok {
		r = &ruleEvidence{selectors: vectorSelectors(ar.Query())}
		s[ar] = r
	}
	return r
}

// ruleEvidence is what the bottlenecks of one alerting rule cite: the
// series its selectors read, by the alert's instance, engine and model.
// The reads of an instance are kept from one evaluation to the next: a
// thousand alerts of a rule in a large fleet would otherwise build the
// same query strings and label sets at every evaluation.
type ruleEvidence struct {
	selectors []*parser.VectorSelector
	// kept are the reads of the last evaluation, used those of this one.
	kept, used map[alertIdentity][]evidenceRead
}

// alertIdentity is what an alert's evidence depends on of its labels.
type alertIdentity struct{ instance, engine, model string }

// evidenceRead is one query of an alert's evidence: the series of its
// answer that have id's labels, or, when there are none and fallback is
// set, those of fallback.
type evidenceRead struct {
	query, fallback string
	id              labels.Labels
}

// reads returns the reads of the evidence of an alert with the given
// labels.
func (r *ruleEvidence) reads(alert labels.Labels) []evidenceRead {
	k := alertIdentity{alert.Get(signals.LabelInstance), alert.Get(signals.LabelEngine), alert.Get(signals.LabelModel)}
	if reads, ok := r.used[k]; ok {
		return reads
	}
	reads, ok := r.kept[k]
	if !ok {
		reads = evidenceReads(r.selectors, k)
	}
	if r.used == nil {
		r.used = map[alertIdentity][]evidenceRead{}
	}
	r.used[k] = reads
	return reads
}

// rotate ends an evaluation: the reads it used are kept for the next,
// and those of alerts no longer active are dropped.
func (r *ruleEvidence) rotate() {
	r.kept, r.used = r.used, nil
}

// evidenceReads returns the reads of every signal and SLO target that
// sels read, narrowed to the alert's instance, engine and model. An SLO
// target falls back to the default target when the model has none.
func evidenceReads(sels []*parser.VectorSelector, alert alertIdentity) []evidenceRead {
	id := labels.NewScratchBuilder(3)
	for _, l := range []labels.Label{{Name: signals.LabelEngine, Value: alert.engine}, {Name: signals.LabelInstance, Value: alert.instance}, {Name: signals.LabelModel, Value: alert.model}} {
		if l.Value != "" {
			id.Add(l.Name, l.Value)
		}
	}
	ids := id.Labels()
	// The query asks for the alert's model and engine but not its
	// instance, whose series are picked from the answer: one query serves
	// every alert of the rule on that model's instances, and reads no
	// other model's series.
	pool := labels.NewBuilder(ids).Del(signals.LabelInstance).Labels()
	var reads []evidenceRead
	done := map[string]bool{}
	for _, vs := range sels {
		name := selectorName(vs)
		switch {
		case name == "":
			continue
		case isSLOSeries(name):
			q := selectorString(name, nil, labels.FromStrings(signals.LabelModel, alert.model))
			if !done[q] {
				done[q] = true
				reads = append(reads, evidenceRead{query: q, fallback: selectorString(name, nil, labels.FromStrings(signals.LabelModel, "")), id: labels.EmptyLabels()})
			}
		case isKnownSeries(name):
			var matchers []*labels.Matcher
			for _, mt := range vs.LabelMatchers {
				if mt.Name != signals.LabelInstance || alert.instance == "" {
					matchers = append(matchers, mt)
				}
			}
			if q := selectorString(name, matchers, pool); !done[q] {
				done[q] = true
				reads = append(reads, evidenceRead{query: q, id: ids})
			}
		}
	}
	return reads
}

// evidence returns the series that reads find, each once, sorted.
func (e *evidenceQueries) evidence(ctx context.Context, reads []evidenceRead) []signals.Sample {
	var out []signals.Sample
	// add adds the series of q whose labels include id's, and says
	// whether there were any.
	add := func(q string, id labels.Labels) bool {
		n := len(out)
		for _, s := range e.get(ctx, q, id.Get(signals.LabelInstance)) {
			if hasLabels(s.Metric, id) {
				out = append(out, signals.Sample{Labels: s.Metric, Value: s.F})
			}
		}
		return len(out) > n
	}
	for _, r := range reads {
		if !add(r.query, r.id) && r.fallback != "" {
			add(r.fallback, r.id)
		}
	}
	// Two selectors of a rule may read the same series.
	slices.SortStableFunc(out, func(a, b signals.Sample) int { return labels.Compare(a.Labels, b.Labels) })
	return slices.CompactFunc(out, func(a, b signals.Sample) bool { return labels.Equal(a.Labels, b.Labels) })
}

// hasLabels says whether ls has every label of want, with its value.
func hasLabels(ls, want labels.Labels) bool {
	ok := true
	want.Range(func(l labels.Label) {
		if ls.Get(l.Name) != l.Value {
			ok = false
		}
	})
	return ok
}

// selectorString builds name{...} from the matchers of a selector, with
// those on the labels of id replaced by equality with id's values.
func selectorString(name string, matchers []*labels.Matcher, id labels.Labels) string {
	var parts []string
	for _, mt := range matchers {
		if mt.Name == model.MetricNameLabel || id.Has(mt.Name) {
			continue
		}
		parts = append(parts, mt.String())
	}
	id.Range(func(l labels.Label) {
		parts = append(parts, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value).String())
	})
	slices.Sort(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// HistoryNeeded is how much signal history the loaded rules need to
// decide at once after a start: the longest `for` plus range window of any
// alerting rule. Backfill at least this much.
func (m *Manager) HistoryNeeded() time.Duration {
	m.snapMtx.RLock()
	defer m.snapMtx.RUnlock()
	var longest time.Duration
	for _, g := range m.published {
		for _, ar := range g.AlertingRules() {
			longest = max(longest, ar.HoldDuration()+lookback(ar.Query()))
		}
	}
	return longest
}

// Annotations returns the annotation templates of ar, a rule of
// RuleGroups.
func (m *Manager) Annotations(ar *promrules.AlertingRule) labels.Labels {
	m.snapMtx.RLock()
	defer m.snapMtx.RUnlock()
	return m.pubStatic.merge(ruleKey(ar.Name(), ar.Query().String()), ar.Annotations())
}

// Rule returns the expression and labels of ar, a rule of RuleGroups, as
// its file gives them.
func (m *Manager) Rule(ar *promrules.AlertingRule) (expr string, lset labels.Labels) {
	m.snapMtx.RLock()
	defer m.snapMtx.RUnlock()
	return m.pubStatic.rule(ar)
}

// sameStatic says whether the alerting rules of g have the same plain
// annotations in old and next. Their plain labels are in their keys.
func sameStatic(g *promrules.Group, old, next ruleStatics) bool {
	for _, ar := range g.AlertingRules() {
		key := ruleKey(ar.Name(), ar.Query().String())
		if !labels.Equal(old[key].annotations, next[key].annotations) {
			return false
		}
	}
	return true
}

// Bottlenecks returns the active bottlenecks of the last Eval.
func (m *Manager) Bottlenecks() []Bottleneck {
	m.snapMtx.RLock()
	defer m.snapMtx.RUnlock()
	return slices.Clone(m.bottlenecks)
}

// RuleGroups returns the loaded groups sorted by file and name, for
// listing rules with their health, last error and alerts. Callers must
// not evaluate or modify them.
func (m *Manager) RuleGroups() []*promrules.Group {
	m.snapMtx.RLock()
	out := slices.Clone(m.published)
	m.snapMtx.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].File() != out[j].File() {
			return out[i].File() < out[j].File()
		}
		return out[i].Name() < out[j].Name()
	})
	return out
}
