package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/scrape"
	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signalstore"
)

// ScrapeJobName is the job label of the samples the embedded source scrapes.
const ScrapeJobName = "perfagent"

// EmbeddedSource scrapes model servers itself with Prometheus's scrape
// manager into the local store and answers queries from it. Target health
// and staleness work as in Prometheus: a target that stops answering gets
// staleness markers, so its series end at once. The store keeps the
// scraped samples only as long as the profiles' queries reach back
// (RawRetention); the source drops older ones once a cycle.
type EmbeddedSource struct {
	store   *signalstore.Store
	logger  *slog.Logger
	manager *scrape.Manager
	tsets   chan map[string][]*targetgroup.Group
	metrics *Metrics
	shard   shard.Shard

	mtx     sync.Mutex
	targets []config.TargetConfig
	// native rewrites queries for native histograms; nil when the scrape
	// keeps classic ones.
	native *nativeQueries
	// renamed removes the rename calls the scrape does instead (rename.go);
	// nil when it renames nothing.
	renamed *renameQueries
	// upCheckedAt is the evaluation time whose queries last set
	// SourceUp from the targets' health: once per cycle, not per query.
	upCheckedAt time.Time
	// retention is how long scraped samples are kept: see RawRetention.
	retention time.Duration

	// One trim of the raw samples runs at a time, beside the queries (a
	// trim waits for the reads of what it drops); none starts once Stop
	// has been called. trimMtx guards trimming and stopped.
	trimMtx  sync.Mutex
	trimming bool
	stopped  bool
	trims    sync.WaitGroup
}

// NewEmbeddedSource builds a scrape manager that appends to store. The
// scrape machinery's own metrics (prometheus_target_*, as in Prometheus)
// go to reg; nil keeps them private. Only the targets of sh are scraped.
func NewEmbeddedSource(store *signalstore.Store, logger *slog.Logger, m *Metrics, reg prometheus.Registerer, sh shard.Shard) (*EmbeddedSource, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	mgr, err := scrape.NewManager(&scrape.Options{
		DiscoveryReloadInterval:  model.Duration(100 * time.Millisecond),
		DiscoveryReloadOnStartup: true,
	}, logger, nil, nil, store.RawAppendable(), reg)
	if err != nil {
		return nil, fmt.Errorf("creating scrape manager: %w", err)
	}
	return &EmbeddedSource{
		store:   store,
		logger:  logger,
		manager: mgr,
		tsets:   make(chan map[string][]*targetgroup.Group, 1),
		metrics: m,
		shard:   sh,
	}, nil
}

// ApplyConfig puts the scrape clocks and targets of cfg in force. See
// PrepareConfig.
func (e *EmbeddedSource) ApplyConfig(cfg config.Config, profiles []*Profile) error {
	commit, err := e.PrepareConfig(cfg, profiles)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareConfig builds the scrape configuration and target list of cfg
// without touching the running scrapes; the returned commit hands them to
// the scrape manager. A scrape keeps only the metric families the
// profiles and the settings queries read: the rest of a model server's
// page would take memory in the store and never be read. It stores
// classic histograms as native ones when every query can read them so
// (native.go), and renames model_name to model where the profiles would
// in every query (rename.go). Targets of other shards are dropped by a
// relabelling rule, as in a Prometheus sharded with hashmod.
func (e *EmbeddedSource) PrepareConfig(cfg config.Config, profiles []*Profile) (commit func(), err error) {
	queries, native, classic := embeddedQueries(profiles)
	if classic != nil {
		e.logger.Info("The embedded scrape keeps classic histograms as exposed", "reason", classic)
	}
	retention, err := rawRetention(queries, cfg)
	if err != nil {
		return nil, err
	}
	keep, _ := readFamilies(queries)
	var (
		renamed *renameQueries
		rename  []any
	)
	if r := renamesOf(queries); r != nil {
		renamed, rename = &renameQueries{renames: r}, r.relabelConfigs()
	}
	pcfg, err := scrapeConfig(cfg.Global, keep, rename, native != nil, e.shard)
	if err != nil {
		return nil, err
	}
	groups, err := targetGroups(cfg.Source.Targets)
	if err != nil {
		return nil, err
	}
	var targets []config.TargetConfig
	for _, t := range cfg.Source.Targets {
		if e.shard.Owns(t.Instance()) {
			targets = append(targets, t)
		}
	}
	return func() {
		// The configuration was loaded and validated by Prometheus's own
		// loader above; the manager refuses only what that loader refuses.
		if err := e.manager.ApplyConfig(pcfg); err != nil {
			e.logger.Error("Applying the scrape configuration failed; scrapes keep their previous clocks", "err", err)
		}
		e.mtx.Lock()
		e.targets = targets
		e.native = native
		e.retention = retention
		e.renamed = renamed
		e.mtx.Unlock()
		// Keep only the newest target list if the manager has not taken
		// the previous one yet.
		select {
		case <-e.tsets:
		default:
		}
		e.tsets <- map[string][]*targetgroup.Group{ScrapeJobName: groups}
	}, nil
}

// embeddedQueries are the queries the embedded source will answer for
// profiles, in the form it will run them: over native histograms, with
// native's rewriter, when every query can be rewritten; as written, with
// a nil native and the reason, when one cannot.
func embeddedQueries(profiles []*Profile) (queries []parser.Expr, native *nativeQueries, classic error) {
	queries, err := profileQueries(profiles)
	if err != nil {
		return nil, nil, err
	}
	rewritten := make([]parser.Expr, len(queries))
	for i, q := range queries {
		// Rewriting works in place: the queries as written stay intact
		// until every one is known to rewrite.
		cp, err := NewParser().ParseExpr(q.String())
		if err != nil {
			return queries, nil, fmt.Errorf("re-parsing %q: %w", q, err)
		}
		if rewritten[i], err = toNativeHistograms(cp); err != nil {
			return queries, nil, err
		}
	}
	return rewritten, &nativeQueries{}, nil
}

// Run scrapes until Stop is called.
func (e *EmbeddedSource) Run() error { return e.manager.Run(e.tsets) }

// Stop ends all scrapes, the targets' series get staleness markers, and
// waits for a trim of the raw samples under way.
func (e *EmbeddedSource) Stop() {
	e.manager.Stop()
	e.trimMtx.Lock()
	e.stopped = true
	e.trimMtx.Unlock()
	e.trims.Wait()
}

// rawRetention is how long the embedded source keeps scraped samples:
// as far back as any of queries reads (its range at the configured rate
// window, or the lookback of an instant selector), and two scrape
// intervals more, so that a scrape late by up to an interval still finds
// the samples before it.
func rawRetention(queries []parser.Expr, cfg config.Config) (time.Duration, error) {
	windowed := make([]parser.Expr, len(queries))
	for i, q := range queries {
		var err error
		if windowed[i], err = WithRange(q, time.Duration(cfg.Collector.RateWindow)); err != nil {
			return 0, err
		}
	}
	return reach(windowed) + 2*time.Duration(cfg.Global.ScrapeInterval), nil
}

// RawRetention is how long the store keeps the scraped samples: the
// profiles' queries at the configured rate window reach no further back.
// A collection over a longer window (CollectOptions.Window) is refused.
func (e *EmbeddedSource) RawRetention() time.Duration {
	e.mtx.Lock()
	defer e.mtx.Unlock()
	return e.retention
}

// queryPlan shares the argument of a histogram's quantiles among them: the
// rate of every native histogram of the fleet is computed once, not once
// per quantile.
func (e *EmbeddedSource) queryPlan() queryPlan { return queryPlan{sharedQuantiles: true} }

// Query implements Source.
func (e *EmbeddedSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	start := time.Now()
	v, err := e.store.Query(ctx, e.stored(expr), ts)
	e.observe(start, err)
	if err == nil && e.firstQueryAt(ts) {
		e.metrics.SourceUp.Set(e.anyTargetUp())
		e.trimRaw(ts.Add(-e.RawRetention()))
	}
	return v, err
}

// trimRaw drops the scraped samples older than before, beside the
// queries; a trim still under way makes this one unnecessary.
func (e *EmbeddedSource) trimRaw(before time.Time) {
	e.trimMtx.Lock()
	defer e.trimMtx.Unlock()
	if e.trimming || e.stopped {
		return
	}
	e.trimming = true
	e.trims.Go(func() {
		if err := e.store.TrimRaw(before); err != nil {
			e.logger.Warn("Dropping old scraped samples failed; they stay in memory until the next cycle", "err", err)
		}
		e.trimMtx.Lock()
		e.trimming = false
		e.trimMtx.Unlock()
	})
}

// stored is expr in the form that reads the store as scraped.
func (e *EmbeddedSource) stored(expr string) string {
	e.mtx.Lock()
	native, renamed := e.native, e.renamed
	e.mtx.Unlock()
	if native != nil {
		expr = native.rewrite(expr)
	}
	if renamed != nil {
		expr = renamed.rewrite(expr)
	}
	return expr
}

// firstQueryAt reports whether ts is a new evaluation time.
func (e *EmbeddedSource) firstQueryAt(ts time.Time) bool {
	e.mtx.Lock()
	defer e.mtx.Unlock()
	if ts.Equal(e.upCheckedAt) {
		return false
	}
	e.upCheckedAt = ts
	return true
}

// anyTargetUp is 1 when at least one model server's last scrape
// succeeded: a TSDB that answers over targets that are all down has
// nothing current to say.
func (e *EmbeddedSource) anyTargetUp() float64 {
	for _, ts := range e.manager.TargetsActive() {
		for _, t := range ts {
			if t.Health() == scrape.HealthGood {
				return 1
			}
		}
	}
	return 0
}

// QueryRange implements Source.
func (e *EmbeddedSource) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	began := time.Now()
	m, err := e.store.QueryRange(ctx, e.stored(expr), start, end, step)
	e.observe(began, err)
	return m, err
}

// observe counts a query of the local TSDB; a failed one puts the source
// down. Whether it is up again is decided by the targets' health, once per
// evaluation time (Query).
func (e *EmbeddedSource) observe(start time.Time, err error) {
	e.metrics.SourceQueryLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		e.metrics.SourceQueries.WithLabelValues(OutcomeError).Inc()
		e.metrics.SourceUp.Set(0)
		return
	}
	e.metrics.SourceQueries.WithLabelValues(OutcomeSuccess).Inc()
}

// TargetHealth is the scrape state of one target.
type TargetHealth struct {
	URL                string    `json:"url"`
	Instance           string    `json:"instance"`
	Health             string    `json:"health"`
	LastError          string    `json:"last_error"`
	LastScrape         time.Time `json:"last_scrape"`
	LastScrapeDuration float64   `json:"last_scrape_duration_seconds"`
}

// Targets reports the health of every configured target of the shard, in
// config order.
func (e *EmbeddedSource) Targets() []TargetHealth {
	byInstance := map[string]*scrape.Target{}
	for _, ts := range e.manager.TargetsActive() {
		for _, t := range ts {
			byInstance[t.GetValue(model.InstanceLabel)] = t
		}
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	out := make([]TargetHealth, 0, len(e.targets))
	for _, tc := range e.targets {
		th := TargetHealth{URL: tc.URL.String(), Instance: tc.Instance(), Health: string(scrape.HealthUnknown)}
		if t, ok := byInstance[tc.Instance()]; ok {
			th.Health = string(t.Health())
			if err := t.LastError(); err != nil {
				th.LastError = err.Error()
			}
			th.LastScrape = t.LastScrape()
			th.LastScrapeDuration = t.LastScrapeDuration().Seconds()
		}
		out = append(out, th)
	}
	return out
}

// scrapeConfig renders the clocks as a Prometheus configuration and loads
// it with Prometheus's own loader, so every scrape default is upstream's.
// keep, when not empty, is the regular expression of the metric names a
// scrape keeps (a metric relabelling rule, as a Prometheus user writes it);
// rename are more metric relabelling rules, applied after it; native
// stores classic histograms as native histograms with custom buckets; the
// target relabelling rules of sh drop the targets of other shards.
func scrapeConfig(g config.GlobalConfig, keep string, rename []any, native bool, sh shard.Shard) (*promconfig.Config, error) {
	// Model servers answer with text/plain and sometimes with no content
	// type at all; read those as the classic text format.
	job := map[string]any{"job_name": ScrapeJobName, "fallback_scrape_protocol": "PrometheusText0.0.4"}
	if native {
		job["convert_classic_histograms_to_nhcb"] = true
	}
	if rc := sh.RelabelConfigs(); rc != nil {
		job["relabel_configs"] = rc
	}
	var metricRelabel []any
	if keep != "" {
		metricRelabel = append(metricRelabel, map[string]any{"source_labels": []string{model.MetricNameLabel}, "regex": keep, "action": "keep"})
	}
	if metricRelabel = append(metricRelabel, rename...); metricRelabel != nil {
		job["metric_relabel_configs"] = metricRelabel
	}
	doc := map[string]any{
		"global": map[string]any{
			"scrape_interval": g.ScrapeInterval.String(),
			"scrape_timeout":  g.ScrapeTimeout.String(),
		},
		"scrape_configs": []any{job},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("rendering scrape configuration: %w", err)
	}
	cfg, err := promconfig.Load(string(b), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("loading scrape configuration: %w", err)
	}
	return cfg, nil
}

func targetGroups(targets []config.TargetConfig) ([]*targetgroup.Group, error) {
	group := &targetgroup.Group{Source: ScrapeJobName}
	for _, t := range targets {
		u, err := url.Parse(t.URL.Raw())
		if err != nil {
			return nil, fmt.Errorf("target config.URL %q does not parse", t.URL)
		}
		ls := model.LabelSet{
			// Set before relabelling, which shards on it; Prometheus
			// would set the same value from the address only after.
			model.InstanceLabel:    model.LabelValue(t.Instance()),
			model.AddressLabel:     model.LabelValue(u.Host),
			model.SchemeLabel:      model.LabelValue(u.Scheme),
			model.MetricsPathLabel: model.LabelValue(metricsPath(u)),
		}
		params := u.Query()
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ls[model.LabelName(model.ParamLabelPrefix+k)] = model.LabelValue(params.Get(k))
		}
		group.Targets = append(group.Targets, ls)
	}
	return []*targetgroup.Group{group}, nil
}

func metricsPath(u *url.URL) string {
	if u.Path == "" || u.Path == "/" {
		return "/metrics"
	}
	return u.Path
}
