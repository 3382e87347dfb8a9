package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

// Collector computes signals from a Source with the engine profiles, keeps
// the latest snapshot, and appends each cycle to the Store.
//
// Profile rules are evaluated one by one with the upstream recording-rule
// type rather than through a rules.Group, because one cycle must see all
// engines together: the instance set of each engine gates every other
// signal of that engine, configuration pins override detection, missing
// model labels are filled in, and the cycle is appended in one transaction
// so readers never see half of it.
type Collector struct {
	logger  *slog.Logger
	metrics *Metrics
	store   *signalstore.Store
	prober  *Prober

	mtx      sync.RWMutex
	source   Source
	cfg      config.Config
	profiles []*compiledProfile
	facts    map[string]config.InstanceConfig
	settings map[string]Settings // from metrics, by instance, last cycle
	latest   *Snapshot
	lastSeen *seriesSet // series appended in the last cycle
	ready    bool
	failed   bool      // the last cycle failed
	backAt   time.Time // the first cycle that succeeded after a failed one
}

type compiledProfile struct {
	engine   string
	file     string
	rules    []*rules.RecordingRule
	settings *settingsQuery
}

// Options build a Collector.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics
	// Store receives every cycle; nil computes without keeping history
	// (the one-shot CLI).
	Store *signalstore.Store
	// Prober reads info endpoints; nil disables probes.
	Prober *Prober
}

// New builds a Collector; ApplyConfig must be called before Cycle.
func New(o Options) *Collector {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{
		logger:   logger,
		metrics:  o.Metrics,
		store:    o.Store,
		prober:   o.Prober,
		settings: map[string]Settings{},
		lastSeen: newSeriesSet(0),
	}
}

// ApplyConfig puts cfg, the source and the profiles in force. See
// PrepareConfig.
func (c *Collector) ApplyConfig(cfg config.Config, src Source, profiles []*Profile) error {
	commit, err := c.PrepareConfig(cfg, src, profiles)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareConfig compiles the profiles for cfg without touching the
// running configuration; the returned commit puts cfg, the source and the
// profiles in force from the next cycle.
func (c *Collector) PrepareConfig(cfg config.Config, src Source, profiles []*Profile) (commit func(), err error) {
	if len(profiles) == 0 {
		return nil, ErrNoProfiles
	}
	queries := builtinSettingsQueries()
	compiled := make([]*compiledProfile, 0, len(profiles))
	for _, p := range profiles {
		cp := &compiledProfile{engine: p.Engine, file: p.File}
		if q, ok := queries[p.Engine]; ok {
			cp.settings = &q
		}
		for _, r := range p.Rules {
			expr, err := WithRange(r.Expr, time.Duration(cfg.Collector.RateWindow))
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", p.File, r.Line, err)
			}
			cp.rules = append(cp.rules, rules.NewRecordingRule(r.Record, expr, r.Labels))
		}
		compiled = append(compiled, cp)
	}
	facts := cfg.InstanceFacts()
	return func() {
		c.mtx.Lock()
		defer c.mtx.Unlock()
		c.source = src
		c.cfg = cfg
		c.profiles = compiled
		c.facts = facts
	}, nil
}

// Instance is what one cycle knows about one model server.
type Instance struct {
	Instance string          `json:"instance"`
	Engine   string          `json:"engine"`
	Model    string          `json:"model"`
	Settings Settings        `json:"settings"`
	Signals  []signals.Value `json:"signals"`
}

// Snapshot is the outcome of one collection.
type Snapshot struct {
	Time      time.Time   `json:"time"`
	Instances []*Instance `json:"instances"`
	// Samples are every signal series, sorted by labels.
	Samples []signals.Sample `json:"-"`
	// Errors are the rules that could not be evaluated.
	Errors []string `json:"errors,omitempty"`
	// Queries is how many queries the cycle sent to the source.
	Queries int `json:"queries"`
}

// Instance returns the named instance, or nil.
func (s *Snapshot) Instance(name string) *Instance {
	i := sort.Search(len(s.Instances), func(i int) bool { return s.Instances[i].Instance >= name })
	if i < len(s.Instances) && s.Instances[i].Instance == name {
		return s.Instances[i]
	}
	return nil
}

// CollectOptions narrow one collection.
type CollectOptions struct {
	// Instances keeps only these instances; empty keeps all.
	Instances []string
	// Engine keeps only this engine's profile; empty keeps all.
	Engine string
	// Window overrides the rate window; zero keeps the configured one.
	Window time.Duration
}

// Latest returns the snapshot of the last cycle, or nil before the first.
func (c *Collector) Latest() *Snapshot {
	c.mtx.RLock()
	defer c.mtx.RUnlock()
	return c.latest
}

// Ready reports whether a cycle has completed without a source failure.
func (c *Collector) Ready() bool {
	c.mtx.RLock()
	defer c.mtx.RUnlock()
	return c.ready
}

// Cycle collects at now, appends the signals to the store, marks series
// that disappeared as stale, and makes the snapshot the latest.
func (c *Collector) Cycle(ctx context.Context, now time.Time) (*Snapshot, error) {
	start := time.Now()
	snap, err := c.Collect(ctx, now, CollectOptions{})
	c.metrics.CollectionDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		c.metrics.CollectionFailures.Inc()
		c.mtx.Lock()
		c.ready = false
		c.failed = true
		c.mtx.Unlock()
		if serr := c.markStale(ctx, now); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	if len(snap.Errors) > 0 {
		c.metrics.CollectionFailures.Inc()
	}
	if err := c.append(ctx, snap); err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, p := range c.profileEngines() {
		counts[p] = 0
	}
	for _, in := range snap.Instances {
		counts[in.Engine]++
	}
	for e, n := range counts {
		c.metrics.Instances.WithLabelValues(e).Set(float64(n))
	}
	c.mtx.Lock()
	c.latest = snap
	c.ready = true
	if c.failed {
		c.backAt, c.failed = now, false
	}
	c.mtx.Unlock()
	return snap, nil
}

// BackAt is the time of the first cycle that succeeded after a failed
// one, or zero if no cycle has failed. Signals computed over a window
// that reaches back into the outage (rates above all) are incomplete
// until a window has passed since.
func (c *Collector) BackAt() time.Time {
	c.mtx.RLock()
	defer c.mtx.RUnlock()
	return c.backAt
}

func (c *Collector) profileEngines() []string {
	c.mtx.RLock()
	defer c.mtx.RUnlock()
	out := make([]string, len(c.profiles))
	for i, p := range c.profiles {
		out[i] = p.engine
	}
	return out
}

// append writes a snapshot in one transaction, with staleness markers for
// the series of the previous cycle that are gone, as Prometheus's rule
// groups do. A sample whose series the previous cycle appended takes that
// cycle's label set, which is the one the store's series holds: the
// snapshot then shares it, rather than keeping a copy of every series'
// labels per cycle (most of the snapshot's memory at a thousand instances).
func (c *Collector) append(ctx context.Context, snap *Snapshot) error {
	if c.store == nil {
		return nil
	}
	ts := snap.Time.UnixMilli()
	app := c.store.Appender(ctx)
	c.mtx.RLock()
	last := c.lastSeen
	c.mtx.RUnlock()
	seen := newSeriesSet(len(snap.Samples))
	for i := range snap.Samples {
		s := &snap.Samples[i]
		h := s.Labels.Hash()
		if prev, ok := last.get(h, s.Labels); ok {
			s.Labels = prev
		}
		if _, err := app.Append(0, s.Labels, ts, s.Value); err != nil {
			_ = app.Rollback()
			return fmt.Errorf("appending %s at %s: %w", s.Labels, snap.Time.Format(time.RFC3339), err)
		}
		seen.add(h, s.Labels)
	}
	c.mtx.Lock()
	c.lastSeen = seen
	c.mtx.Unlock()
	err := last.each(func(h uint64, l labels.Labels) error {
		if _, ok := seen.get(h, l); ok {
			return nil
		}
		if _, err := app.Append(0, l, ts, math.Float64frombits(value.StaleNaN)); err != nil && !errors.Is(err, storage.ErrOutOfOrderSample) {
			return fmt.Errorf("marking %s stale: %w", l, err)
		}
		return nil
	})
	if err != nil {
		_ = app.Rollback()
		return err
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("committing signals at %s: %w", snap.Time.Format(time.RFC3339), err)
	}
	return nil
}

// seriesSet holds label sets by their hash, so that finding a series of
// the last cycle costs no string key per series. A set whose hash
// another holds already goes to a bucket of its own.
type seriesSet struct {
	first map[uint64]labels.Labels
	more  map[uint64][]labels.Labels // nil until a hash is shared
}

func newSeriesSet(size int) *seriesSet {
	return &seriesSet{first: make(map[uint64]labels.Labels, size)}
}

// add adds l, whose hash is h, unless s holds it already.
func (s *seriesSet) add(h uint64, l labels.Labels) {
	if _, ok := s.get(h, l); ok {
		return
	}
	if _, taken := s.first[h]; !taken {
		s.first[h] = l
		return
	}
	if s.more == nil {
		s.more = map[uint64][]labels.Labels{}
	}
	s.more[h] = append(s.more[h], l)
}

// get returns the set equal to l, whose hash is h, if s holds one.
func (s *seriesSet) get(h uint64, l labels.Labels) (labels.Labels, bool) {
	if first, ok := s.first[h]; ok && labels.Equal(first, l) {
		return first, true
	}
	for _, o := range s.more[h] {
		if labels.Equal(o, l) {
			return o, true
		}
	}
	return labels.EmptyLabels(), false
}

// each calls f with every set of s and its hash until f fails.
func (s *seriesSet) each(f func(h uint64, l labels.Labels) error) error {
	for h, l := range s.first {
		if err := f(h, l); err != nil {
			return err
		}
	}
	for h, ls := range s.more {
		for _, l := range ls {
			if err := f(h, l); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *seriesSet) len() int {
	n := len(s.first)
	for _, ls := range s.more {
		n += len(ls)
	}
	return n
}

// markStale ends every series of the last cycle at ts, as Prometheus
// does for the series of a target whose scrape fails. Without it, queries
// over the store would carry the last values through an outage of the
// source for the lookback delta (5 minutes), and a workflow's validation
// window or guardrail would judge a change on values nobody measured.
// The next successful cycle starts the series again.
func (c *Collector) markStale(ctx context.Context, ts time.Time) error {
	if c.store == nil {
		return nil
	}
	c.mtx.Lock()
	last := c.lastSeen
	c.lastSeen = newSeriesSet(0)
	c.mtx.Unlock()
	if last.len() == 0 {
		return nil
	}
	app := c.store.Appender(ctx)
	err := last.each(func(_ uint64, l labels.Labels) error {
		if _, err := app.Append(0, l, ts.UnixMilli(), math.Float64frombits(value.StaleNaN)); err != nil && !errors.Is(err, storage.ErrOutOfOrderSample) {
			return fmt.Errorf("marking %s stale after a failed collection: %w", l, err)
		}
		return nil
	})
	if err != nil {
		_ = app.Rollback()
		return err
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("marking signals stale after a failed collection at %s: %w", ts.Format(time.RFC3339), err)
	}
	return nil
}

// Collect computes one snapshot at now without storing it. It fails only
// when the source cannot answer at all; a rule that fails on its own is
// listed in Snapshot.Errors and its signal is missing.
func (c *Collector) Collect(ctx context.Context, now time.Time, o CollectOptions) (*Snapshot, error) {
	c.mtx.RLock()
	src, profiles, facts, cfg := c.source, c.profiles, c.facts, c.cfg
	c.mtx.RUnlock()
	if src == nil {
		return nil, errors.New("collector has no configuration yet")
	}
	// The plan is the source's own: a narrowed source is a wrapper.
	plan := planOf(src)
	if o.Window > 0 {
		var err error
		if profiles, err = rewindow(profiles, o.Window); err != nil {
			return nil, err
		}
		if err := withinRetention(src, profiles, o.Window); err != nil {
			return nil, err
		}
	}
	if len(o.Instances) > 0 {
		var err error
		if src, err = narrow(src, o.Instances); err != nil {
			return nil, err
		}
	} else if r, ok := src.(onceReader); ok {
		// Not for a few instances: a shared read is of the whole fleet.
		src = r.readingOnce(evaluationQueries(profiles, plan, o.Engine))
	}
	ev := evaluate(ctx, src, plan, profiles, o.Engine, now)
	if ev.unavailable != nil {
		return nil, fmt.Errorf("collecting signals: %w", ev.unavailable)
	}
	if ev.down != nil && !slices.Contains(ev.detected, true) {
		return nil, fmt.Errorf("collecting signals: %w", ev.down)
	}
	var wanted map[string]bool
	if len(o.Instances) > 0 {
		wanted = map[string]bool{}
		for _, in := range o.Instances {
			wanted[in] = true
		}
	}
	instances := detectInstances(ev, profiles, facts, wanted, c.logger)
	c.settle(ctx, now, cfg, facts, instances, ev, profiles)

	snap := &Snapshot{Time: now, Queries: ev.queries, Errors: ev.errs}
	snap.Samples = signalSamples(ev, profiles, instances)
	for _, s := range snap.Samples {
		in := instances[s.Labels.Get(signals.LabelInstance)]
		in.Signals = append(in.Signals, signals.Value{Name: s.Labels.Get(model.MetricNameLabel), Quantile: s.Labels.Get(signals.LabelQuantile), Value: s.Value})
	}
	for _, in := range instances {
		snap.Instances = append(snap.Instances, in)
	}
	sort.Slice(snap.Instances, func(i, j int) bool { return snap.Instances[i].Instance < snap.Instances[j].Instance })
	return snap, nil
}

// evaluation holds what the source answered in one cycle, by profile.
type evaluation struct {
	results  [][]promql.Vector // per profile, per rule
	detected []bool            // the profile's instance rule answered
	settings []promql.Vector   // per profile, its settings query
	errs     []string
	queries  int
	down     error
	// unavailable is the first error of a source that could not be
	// reached (ErrUnavailable), whichever query it answered.
	unavailable error
}

// evaluate runs every rule and settings query of the selected profiles
// as plan says: the profiles concurrently, and each profile's first rule
// (its instances) before the others.
func evaluate(ctx context.Context, src Source, plan queryPlan, profiles []*compiledProfile, engine string, now time.Time) *evaluation {
	ev := &evaluation{
		results:  make([][]promql.Vector, len(profiles)),
		detected: make([]bool, len(profiles)),
		settings: make([]promql.Vector, len(profiles)),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([][]string, len(profiles))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		queries atomic.Int64
		slots   chan struct{}
	)
	if plan.concurrency > 0 {
		slots = make(chan struct{}, plan.concurrency)
	}
	query := func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		queries.Add(1)
		return src.Query(ctx, expr, ts)
	}
	// unavailable keeps the first error of a source that could not be
	// reached, stops the rest of the cycle, which is worthless, and says
	// whether err is one.
	unavailable := func(err error) bool {
		if !errors.Is(err, ErrUnavailable) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if ev.unavailable == nil {
			ev.unavailable = err
		}
		cancel()
		return true
	}
	if plan.nativeHistograms != nil {
		native, err := hasNativeHistograms(ctx, query, profiles, now)
		switch {
		case unavailable(err):
			ev.queries = int(queries.Load())
			return ev
		case err != nil:
			ev.errs = append(ev.errs, err.Error())
		case native:
			classic := query
			query = func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
				return classic(ctx, plan.nativeHistograms.rewrite(expr), ts)
			}
		}
	}
	for i, p := range profiles {
		if engine != "" && p.engine != engine {
			continue
		}
		ev.results[i] = make([]promql.Vector, len(p.rules))
		wg.Go(func() {
			steps := planSteps(p.rules, plan)
			// Rule errors are kept by step so that they are listed in
			// rule order whatever order the steps end in.
			stepErrs := make([][]string, len(steps)+1)
			// run evaluates steps[k] and says whether the profile's
			// evaluation may go on.
			run := func(k int) bool {
				var shared promql.Vector
				var sharedErr error
				s := steps[k]
				if s.shared != "" {
					shared, sharedErr = query(ctx, s.shared, now)
					if sharedErr == nil && s.rename != "" {
						shared = asModel(shared, s.rename)
					}
				}
				for n, j := range s.rules {
					r := p.rules[j]
					var v promql.Vector
					err := sharedErr
					switch {
					case s.shared == "":
						v, err = r.Eval(ctx, 0, now, query, nil, 0)
					case err == nil:
						v, err = r.Eval(ctx, 0, now, answered(histogramQuantile(s.quantiles[n], shared)), nil, 0)
					}
					if err != nil {
						stepErrs[k] = append(stepErrs[k], fmt.Sprintf("%s rule %s: %v", p.file, r.Name(), err))
						if unavailable(err) {
							return false
						}
						if j == 0 {
							// Without its instances the profile's other
							// signals cannot be attributed.
							mu.Lock()
							ev.down = err
							mu.Unlock()
							return false
						}
						continue
					}
					ev.results[i][j] = v
					if j == 0 {
						ev.detected[i] = true
					}
				}
				return true
			}
			settings := func() {
				v, err := query(ctx, p.settings.expr, now)
				unavailable(err)
				if err != nil {
					stepErrs[len(steps)] = append(stepErrs[len(steps)], fmt.Sprintf("%s settings query: %v", p.engine, err))
					return
				}
				ev.settings[i] = v
			}
			defer func() {
				for _, e := range stepErrs {
					errs[i] = append(errs[i], e...)
				}
			}()
			if !run(0) {
				return
			}
			if slots == nil {
				for k := 1; k < len(steps); k++ {
					if !run(k) {
						return
					}
				}
				if p.settings != nil {
					settings()
				}
				return
			}
			var pwg sync.WaitGroup
			for k := 1; k < len(steps); k++ {
				pwg.Go(func() { run(k) })
			}
			if p.settings != nil {
				pwg.Go(settings)
			}
			pwg.Wait()
		})
	}
	wg.Wait()
	ev.queries = int(queries.Load())
	for _, e := range errs {
		ev.errs = append(ev.errs, e...)
	}
	return ev
}

// evaluationQueries are the queries evaluate sends for profiles (those
// of engine, when it is not empty) with plan.
func evaluationQueries(profiles []*compiledProfile, plan queryPlan, engine string) []string {
	var out []string
	for _, p := range profiles {
		if engine != "" && p.engine != engine {
			continue
		}
		for _, s := range planSteps(p.rules, plan) {
			if s.shared != "" {
				out = append(out, s.shared)
				continue
			}
			for _, j := range s.rules {
				out = append(out, p.rules[j].Query().String())
			}
		}
		if p.settings != nil {
			out = append(out, p.settings.expr)
		}
	}
	return out
}

// detectInstances decides which engine each instance runs: the first
// profile whose instance rule lists it, unless the configuration pins
// another engine.
func detectInstances(ev *evaluation, profiles []*compiledProfile, facts map[string]config.InstanceConfig, wanted map[string]bool, logger *slog.Logger) map[string]*Instance {
	instances := map[string]*Instance{}
	for i, p := range profiles {
		if !ev.detected[i] {
			continue
		}
		for _, s := range ev.results[i][0] {
			inst := s.Metric.Get(signals.LabelInstance)
			if inst == "" || (wanted != nil && !wanted[inst]) {
				continue
			}
			if pin := facts[inst].Engine; pin != "" && pin != p.engine {
				continue
			}
			if prev, taken := instances[inst]; taken {
				logger.Debug("Instance matches two engine profiles; keeping the first", "instance", inst, "kept", prev.Engine, "other", p.engine)
				continue
			}
			instances[inst] = &Instance{Instance: inst, Engine: p.engine, Model: s.Metric.Get(signals.LabelModel), Settings: Settings{}}
		}
	}
	return instances
}

// settle fills each instance's settings (metrics, then probes, then
// configuration) and model name, and starts the probes that are due.
func (c *Collector) settle(ctx context.Context, now time.Time, cfg config.Config, facts map[string]config.InstanceConfig, instances map[string]*Instance, ev *evaluation, profiles []*compiledProfile) {
	for i, p := range profiles {
		if ev.settings[i] == nil {
			continue
		}
		for inst, kv := range p.settings.extract(ev.settings[i]) {
			if in, ok := instances[inst]; ok && in.Engine == p.engine {
				in.Settings.merge(kv, SettingFromMetrics)
			}
		}
	}
	probeTargets := map[string]ProbeTarget{}
	var bases map[string]string
	if c.prober != nil {
		bases = baseURLs(cfg)
	}
	for name, in := range instances {
		if c.prober != nil {
			in.Settings.merge(c.prober.Settings(name), SettingFromProbe)
			base, ok := bases[name]
			if !ok {
				base = "http://" + name
			}
			probeTargets[name] = ProbeTarget{BaseURL: base, Engine: in.Engine}
		}
		in.Settings.merge(facts[name].Settings, SettingFromConfig)
		if m := facts[name].Model; m != "" {
			in.Model = m
		} else if in.Model == "" {
			in.Model = in.Settings["served_model_name"].Value
		}
	}
	if c.prober != nil && len(probeTargets) > 0 && cfg.Collector.Probe.Enabled {
		c.prober.Refresh(context.WithoutCancel(ctx), now, probeTargets)
	}
}

// signalSamples keeps the signals of the instances each engine owns, with
// the model label normalized and NaN or infinite values left out, adds
// capacities computed from settings, and sorts them by labels.
func signalSamples(ev *evaluation, profiles []*compiledProfile, instances map[string]*Instance) []signals.Sample {
	// Room for every result: grown instead, the slice of a fleet's
	// signals was copied over and over.
	n := len(instances) * len(settingSignals())
	for i := range profiles {
		for _, v := range ev.results[i] {
			n += len(v)
		}
	}
	samples := make([]signals.Sample, 0, n)
	withCapacity := map[string]bool{}
	lb := labels.NewBuilder(labels.EmptyLabels())
	for i, p := range profiles {
		for _, v := range ev.results[i] {
			for _, s := range v {
				inst := s.Metric.Get(signals.LabelInstance)
				in, ok := instances[inst]
				if !ok || in.Engine != p.engine || math.IsNaN(s.F) || math.IsInf(s.F, 0) {
					continue
				}
				metric := s.Metric
				if metric.Get(signals.LabelModel) != in.Model {
					lb.Reset(metric)
					metric = lb.Set(signals.LabelModel, in.Model).Labels()
				}
				samples = append(samples, signals.Sample{Labels: metric, Value: s.F})
				if s.Metric.Get(model.MetricNameLabel) == signals.KVCacheCapacity {
					withCapacity[inst] = true
				}
			}
		}
	}
	// Signals that engines report only as settings.
	for _, in := range instances {
		for _, ss := range settingSignals() {
			if ss.name == signals.KVCacheCapacity && withCapacity[in.Instance] {
				continue
			}
			if v, ok := ss.value(in.Engine, in.Settings); ok {
				samples = append(samples, signals.Sample{Labels: labels.FromStrings(
					model.MetricNameLabel, ss.name, signals.LabelEngine, in.Engine, signals.LabelInstance, in.Instance, signals.LabelModel, in.Model,
				), Value: v})
			}
		}
	}
	sort.Slice(samples, func(i, j int) bool { return labels.Compare(samples[i].Labels, samples[j].Labels) < 0 })
	return samples
}

// ErrWindowTooLong is returned by Collect for a window whose queries
// reach further back than the source keeps samples.
var ErrWindowTooLong = errors.New("window reaches further back than the scraped samples are kept")

// withinRetention checks that profiles' queries, at window, read only
// samples src still has: in embedded mode the scraped samples are kept
// only as long as the configured rate window needs them.
func withinRetention(src Source, profiles []*compiledProfile, window time.Duration) error {
	kept, ok := src.(interface{ RawRetention() time.Duration })
	if !ok {
		return nil
	}
	var queries []parser.Expr
	for _, p := range profiles {
		for _, r := range p.rules {
			queries = append(queries, r.Query())
		}
	}
	if need, have := reach(queries), kept.RawRetention(); need > have {
		return fmt.Errorf("%w: a window of %s reads the last %s of scraped samples, and the embedded scrape keeps %s (what the configured collector.rate_window needs); ask for a window of at most %s",
			ErrWindowTooLong, model.Duration(window), model.Duration(need), model.Duration(have), model.Duration(have))
	}
	return nil
}

func rewindow(profiles []*compiledProfile, window time.Duration) ([]*compiledProfile, error) {
	out := make([]*compiledProfile, len(profiles))
	for i, p := range profiles {
		cp := &compiledProfile{engine: p.engine, file: p.file, settings: p.settings}
		for _, r := range p.rules {
			expr, err := WithRange(r.Query(), window)
			if err != nil {
				return nil, err
			}
			cp.rules = append(cp.rules, rules.NewRecordingRule(r.Name(), expr, r.Labels()))
		}
		out[i] = cp
	}
	return out, nil
}

// baseURLs maps each target's instance to where its info endpoints live:
// the target's scheme and host (in embedded mode; an instance without a
// target is reached over http). Built once a cycle: looking up each
// instance's target parsed every target's URL per instance, a million
// parses a cycle at a thousand instances.
func baseURLs(cfg config.Config) map[string]string {
	out := make(map[string]string, len(cfg.Source.Targets))
	for _, t := range cfg.Source.Targets {
		if u, err := url.Parse(t.URL.Raw()); err == nil {
			if _, ok := out[u.Host]; !ok {
				out[u.Host] = u.Scheme + "://" + u.Host
			}
		}
	}
	return out
}

// Engines lists the engines that have a profile, in profile order.
func (c *Collector) Engines() []string { return c.profileEngines() }

// SignalExpressions maps each recorded signal to, per engine, the PromQL
// of its rules as evaluated (rate window applied).
func (c *Collector) SignalExpressions() map[string]map[string][]string {
	c.mtx.RLock()
	defer c.mtx.RUnlock()
	out := map[string]map[string][]string{}
	for _, p := range c.profiles {
		for _, r := range p.rules {
			if out[r.Name()] == nil {
				out[r.Name()] = map[string][]string{}
			}
			out[r.Name()][p.engine] = append(out[r.Name()][p.engine], r.Query().String())
		}
	}
	return out
}
