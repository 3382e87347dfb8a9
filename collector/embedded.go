package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/internal/scraper"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signalstore"
)

// ScrapeJobName is the job label of the samples the embedded source scrapes.
const ScrapeJobName = "perfagent"

// EmbeddedSource scrapes model servers itself into the local store and
// answers queries from it. It keeps only the metric families the
// profiles read, and drops the rest of a page before parsing it
// (internal/scraper). Target health and staleness work as in Prometheus:
// a target that stops answering gets staleness markers, so its series end
// at once. The store keeps the scraped samples only as long as the
// profiles' queries reach back (RawRetention); the source drops older
// ones once a cycle.
type EmbeddedSource struct {
	store   *signalstore.Store
	logger  *slog.Logger
	scraper *scraper.Scraper
	metrics *Metrics
	shard   shard.Shard
	// stop ends Run; done is closed when it has. runMtx guards started
	// (Run was called) and ended (Stop was).
	ctx            context.Context
	stop           context.CancelFunc
	done           chan struct{}
	runMtx         sync.Mutex
	started, ended bool

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
	// shared are the subexpressions the last evaluation's queries
	// computed more than once; sharedFor the queries they were counted
	// in, which every cycle repeats.
	shared    *sharedSubexpressions
	sharedFor []string

	// One trim of the raw samples runs at a time, beside the queries (a
	// trim waits for the reads of what it drops); none starts once Stop
	// has been called. trimMtx guards trimming and stopped.
	trimMtx  sync.Mutex
	trimming bool
	stopped  bool
	trims    sync.WaitGroup
}

// NewEmbeddedSource builds a scraper that appends to store. Its metrics
// (perfagent_scrape*) go to reg; nil keeps them private. Only the targets
// of sh are scraped.
func NewEmbeddedSource(store *signalstore.Store, logger *slog.Logger, m *Metrics, reg prometheus.Registerer, sh shard.Shard) (*EmbeddedSource, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sc, err := scraper.New(store.RawAppendable(), logger, reg, version.ComponentUserAgent("perfagent"))
	if err != nil {
		return nil, fmt.Errorf("creating the scraper: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &EmbeddedSource{
		store:   store,
		logger:  logger,
		scraper: sc,
		metrics: m,
		shard:   sh,
		ctx:     ctx,
		stop:    stop,
		done:    make(chan struct{}),
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
// the scraper. A scrape keeps only the metric families the profiles and
// the settings queries read: the rest of a model server's page would cost
// parsing and memory and never be read. It stores classic histograms as
// native ones when every query can read them so (native.go), and renames
// model_name to model where the profiles would in every query
// (rename.go). Targets of other shards are not scraped.
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
	scfg, err := scrapeConfig(cfg.Global, keep, rename, native != nil)
	if err != nil {
		return nil, err
	}
	var (
		targets []config.TargetConfig
		scraped []scraper.Target
	)
	for _, t := range cfg.Source.Targets {
		if !e.shard.Owns(t.Instance()) {
			continue
		}
		st, err := scrapeTarget(t)
		if err != nil {
			return nil, err
		}
		targets, scraped = append(targets, t), append(scraped, st)
	}
	return func() {
		// The configuration was loaded and validated by Prometheus's own
		// loader above; the scraper refuses only what that loader refuses.
		if err := e.scraper.Apply(scfg, scraped); err != nil {
			e.logger.Error("Applying the scrape configuration failed; scrapes keep their previous clocks", "err", err)
		}
		e.mtx.Lock()
		e.targets = targets
		e.native = native
		e.retention = retention
		e.renamed = renamed
		e.mtx.Unlock()
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
func (e *EmbeddedSource) Run() error {
	e.runMtx.Lock()
	if e.ended {
		e.runMtx.Unlock()
		return nil
	}
	e.started = true
	e.runMtx.Unlock()
	defer close(e.done)
	e.scraper.Run(e.ctx)
	return nil
}

// Stop ends all scrapes, the targets' series get staleness markers, and
// waits for a trim of the raw samples under way.
func (e *EmbeddedSource) Stop() {
	e.runMtx.Lock()
	e.ended = true
	started := e.started
	e.runMtx.Unlock()
	e.stop()
	if started {
		<-e.done
	}
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
	return e.query(ctx, e.store.Query, expr, ts)
}

// query answers Query with eval.
func (e *EmbeddedSource) query(ctx context.Context, eval func(context.Context, string, time.Time) (promql.Vector, error), expr string, ts time.Time) (promql.Vector, error) {
	start := time.Now()
	v, err := eval(ctx, e.stored(expr), ts)
	e.observe(start, err)
	if err == nil && e.firstQueryAt(ts) {
		e.metrics.SourceUp.Set(e.anyTargetUp())
		e.trimRaw(ts.Add(-e.RawRetention()))
	}
	return v, err
}

// readingOnce returns a view of e for one evaluation of queries, in
// which they share their reads of the store (signalstore.ReadCache) and
// compute each subexpression they repeat once (sharedSubexpressions):
// the queries of one cycle read the same histograms over the same rate
// window several times, and compute the same terms. What it read and
// computed goes when the view does.
func (e *EmbeddedSource) readingOnce(queries []string) Source {
	cache := e.store.NewReadCache()
	return &sharedReads{EmbeddedSource: e, shared: &sharedResults{
		plan:        e.sharedSubexpressions(queries),
		eval:        cache.Query,
		evalReading: cache.QueryComputed,
	}}
}

// sharedSubexpressions are those of queries, counted in the form the
// store answers them; counted again only when the queries change.
func (e *EmbeddedSource) sharedSubexpressions(queries []string) *sharedSubexpressions {
	stored := make([]string, len(queries))
	for i, q := range queries {
		stored[i] = e.stored(q)
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	if e.shared == nil || !slices.Equal(e.sharedFor, stored) {
		e.shared, e.sharedFor = newSharedSubexpressions(stored), stored
	}
	return e.shared
}

// sharedReads is an EmbeddedSource whose queries read and compute
// through one evaluation's shared results.
type sharedReads struct {
	*EmbeddedSource
	shared *sharedResults
}

// Query implements Source.
func (s *sharedReads) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	return s.query(ctx, s.shared.query, expr, ts)
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
	for _, h := range e.scraper.Health() {
		if h.Health == scraper.HealthGood {
			return 1
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
	byInstance := map[string]scraper.Health{}
	for _, h := range e.scraper.Health() {
		byInstance[h.Target.Labels.Get(model.InstanceLabel)] = h
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	out := make([]TargetHealth, 0, len(e.targets))
	for _, tc := range e.targets {
		th := TargetHealth{URL: tc.URL.String(), Instance: tc.Instance(), Health: scraper.HealthUnknown}
		if h, ok := byInstance[tc.Instance()]; ok {
			th.Health = h.Health
			if h.LastError != nil {
				th.LastError = h.LastError.Error()
			}
			th.LastScrape = h.LastScrape
			th.LastScrapeDuration = h.LastScrapeDuration.Seconds()
		}
		out = append(out, th)
	}
	return out
}

// scrapeConfig renders the clocks as a Prometheus configuration and loads
// it with Prometheus's own loader, so every scrape default and check is
// upstream's. keep, when not empty, is the regular expression of the
// metric names a scrape keeps; rename are metric relabelling rules, as a
// Prometheus user writes them; native stores classic histograms as
// native histograms with custom buckets.
func scrapeConfig(g config.GlobalConfig, keep string, rename []any, native bool) (scraper.Config, error) {
	job := map[string]any{"job_name": ScrapeJobName}
	if rename != nil {
		job["metric_relabel_configs"] = rename
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
		return scraper.Config{}, fmt.Errorf("rendering scrape configuration: %w", err)
	}
	cfg, err := promconfig.Load(string(b), slog.New(slog.DiscardHandler))
	if err != nil {
		return scraper.Config{}, fmt.Errorf("loading scrape configuration: %w", err)
	}
	sc := cfg.ScrapeConfigs[0]
	return scraper.Config{
		Interval:         time.Duration(sc.ScrapeInterval),
		Timeout:          time.Duration(sc.ScrapeTimeout),
		Keep:             keep,
		MetricRelabel:    sc.MetricRelabelConfigs,
		NativeHistograms: native,
	}, nil
}

// scrapeTarget is how t is scraped: at its URL (on /metrics when it gives
// no path), with the instance and job labels.
func scrapeTarget(t config.TargetConfig) (scraper.Target, error) {
	u, err := url.Parse(t.URL.Raw())
	if err != nil {
		return scraper.Target{}, fmt.Errorf("target URL %q does not parse", t.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	return scraper.Target{
		URL:    u.String(),
		Labels: labels.FromStrings(model.InstanceLabel, t.Instance(), model.JobLabel, ScrapeJobName),
	}, nil
}
