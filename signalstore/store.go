package signalstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/optiinfra/perfagent/internal/instantql"
)

// Store is the agent's local TSDB. It keeps signal history and rule state
// and, when opened with Raw, the raw metrics scraped from model servers
// for as long as they are read. It answers PromQL with the upstream
// engine over both.
type Store struct {
	db     *tsdb.DB
	raw    *rawHead // nil unless Options.Raw
	engine *promql.Engine
	// parser parses the queries instantql may evaluate, as the engine
	// parses them. directQueries and engineQueries count the instant
	// queries each answered.
	parser                       parser.Parser
	directQueries, engineQueries prometheus.Counter
	engineOnly                   bool
	// subqueryStep is the step, in milliseconds, of a subquery written
	// without one (`x[15m:]`): the evaluation interval, as in Prometheus.
	subqueryStep atomic.Int64
}

// stripeSize is how many locked parts a head's series map has. Upstream's
// 16,384 are sized for Prometheus servers of millions of series and cost
// 3.5 MB each; a fleet's signals are tens of thousands of series.
const stripeSize = 4096

// chunkWriteBufferSize buffers a head's writes of full chunks to its
// memory-mapped files. Upstream's 4 MiB is sized for millions of series;
// the signals' heads cut a few tens of thousands of chunks of about a
// hundred bytes every half hour (the raw head every ten minutes), which
// fill 256 KiB every minute or so.
const chunkWriteBufferSize = 256 << 10

// LookbackDelta is how far back the query engine looks for a sample of
// an instant vector, Prometheus's default.
const LookbackDelta = 5 * time.Minute

// Options configure the local TSDB.
type Options struct {
	Path      string
	Retention time.Duration
	Logger    *slog.Logger
	// Registerer receives the TSDB's and the query engine's own metrics;
	// nil keeps them private.
	Registerer prometheus.Registerer
	// OutOfOrderWindow is how far behind the newest sample a sample is
	// still taken: history backfilled after the first cycle is that old.
	// At least DefaultOutOfOrderWindow.
	OutOfOrderWindow time.Duration
	// EvaluationInterval is the step of subqueries written without one;
	// DefaultEvaluationInterval when zero. SetEvaluationInterval changes it.
	EvaluationInterval time.Duration
	// Raw keeps the samples appended through RawAppendable in memory
	// beside the TSDB, queryable with it, until TrimRaw drops them. They
	// are never written to the write-ahead log or to blocks: a model
	// server's raw metrics matter only for the length of a rate window,
	// the signals derived from them are the history.
	Raw bool
	// EngineOnly answers every instant query with the PromQL engine,
	// none directly; for comparing the two.
	EngineOnly bool
}

// DefaultEvaluationInterval is Prometheus's default evaluation interval.
const DefaultEvaluationInterval = time.Minute

// DefaultOutOfOrderWindow is the store's smallest out-of-order window.
const DefaultOutOfOrderWindow = 10 * time.Minute

// Open opens (or creates) the TSDB under opts.Path.
func Open(opts Options) (*Store, error) {
	topts := tsdb.DefaultOptions()
	topts.RetentionDuration = opts.Retention.Milliseconds()
	// Signal history is short; small blocks keep memory and start-up low.
	topts.MinBlockDuration = (30 * time.Minute).Milliseconds()
	topts.MaxBlockDuration = (2 * time.Hour).Milliseconds()
	topts.OutOfOrderTimeWindow = max(opts.OutOfOrderWindow, DefaultOutOfOrderWindow).Milliseconds()
	topts.StripeSize = stripeSize
	topts.HeadChunksWriteBufferSize = chunkWriteBufferSize
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := tsdb.Open(opts.Path, logger, opts.Registerer, topts, nil)
	if err != nil {
		return nil, fmt.Errorf("opening TSDB at %s: %w", opts.Path, err)
	}
	s := &Store{db: db, engineOnly: opts.EngineOnly}
	if opts.Raw {
		if s.raw, err = openRawHead(filepath.Join(opts.Path, "raw"), logger.With("storage", "raw"), opts.Registerer); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	s.SetEvaluationInterval(opts.EvaluationInterval)
	s.parser = parser.NewParser(parser.Options{})
	instantQueries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "perfagent_store_instant_queries_total",
		Help: "Instant queries the local store answered, by what evaluated them: directly, or with the PromQL engine.",
	}, []string{"evaluator"})
	s.directQueries, s.engineQueries = instantQueries.WithLabelValues("direct"), instantQueries.WithLabelValues("engine")
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(instantQueries)
	}
	s.engine = promql.NewEngine(promql.EngineOpts{
		Parser:               s.parser,
		Logger:               logger,
		Reg:                  opts.Registerer,
		MaxSamples:           50_000_000,
		Timeout:              2 * time.Minute,
		LookbackDelta:        LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// Without it the engine dereferences a nil function on `x[15m:]`.
		NoStepSubqueryIntervalFn: func(int64) int64 { return s.subqueryStep.Load() },
	})
	return s, nil
}

// SetEvaluationInterval sets the step of subqueries written without one;
// zero means DefaultEvaluationInterval.
func (s *Store) SetEvaluationInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultEvaluationInterval
	}
	s.subqueryStep.Store(d.Milliseconds())
}

// QueryFunc evaluates instant queries on the store, as upstream's rule
// manager wants them: directly where instantql evaluates them, with the
// engine otherwise.
func (s *Store) QueryFunc() rules.QueryFunc {
	engine := rules.EngineQueryFunc(s.engine, s)
	return func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
		if v, ok, err := s.queryDirect(ctx, s, expr, ts); ok {
			return v, err
		}
		return engine(ctx, expr, ts)
	}
}

// Querier implements storage.Queryable over the TSDB and the raw samples.
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.db.Querier(mint, maxt)
	if err != nil || s.raw == nil {
		return q, err
	}
	rq, err := s.raw.querier(mint, maxt)
	if err != nil {
		_ = q.Close()
		return nil, err
	}
	return &routedQuerier{
		Querier: storage.NewMergeQuerier([]storage.Querier{q, rq}, nil, storage.ChainedSeriesMerge),
		db:      q,
		raw:     rq,
		rawHas:  s.raw.has,
		dbHas:   func(ctx context.Context, metric string) bool { return headHas(ctx, s.db.Head(), metric) },
	}, nil
}

// routedQuerier reads the TSDB and the raw samples as one store. A
// selector that names its metric reads only the side that holds the
// name, and both merged only when both do (the agent's own `up` beside
// the targets'): the scrape writes the raw samples and the agent its
// signals and rule state, and merging the two sides' series costs every
// query a few percent of its time. The TSDB's side is known from its
// head, which holds every metric written in the last hour or more.
type routedQuerier struct {
	storage.Querier // both sides merged: labels, selectors without a name; closes both
	db, raw         storage.Querier
	rawHas, dbHas   func(ctx context.Context, metric string) bool
}

// Select implements storage.Querier.
func (q *routedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if name, ok := metricName(ms); ok {
		switch {
		case !q.rawHas(ctx, name):
			return q.db.Select(ctx, sortSeries, hints, ms...)
		case !q.dbHas(ctx, name):
			return q.raw.Select(ctx, sortSeries, hints, ms...)
		}
	}
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

// metricName is the metric a selector names with an equality matcher.
func metricName(ms []*labels.Matcher) (string, bool) {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value, true
		}
	}
	return "", false
}

// ChunkQuerier implements storage.ChunkQueryable over the TSDB and the raw
// samples.
func (s *Store) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := s.db.ChunkQuerier(mint, maxt)
	if err != nil || s.raw == nil {
		return q, err
	}
	rq, err := s.raw.chunkQuerier(mint, maxt)
	if err != nil {
		_ = q.Close()
		return nil, err
	}
	return storage.NewMergeChunkQuerier([]storage.ChunkQuerier{q, rq}, nil, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)), nil
}

// Close flushes and closes the TSDB and drops the raw samples.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.raw != nil {
		err = errors.Join(err, s.raw.close())
	}
	return err
}

// DB is the underlying TSDB, for components that need the upstream types
// (the rule manager).
func (s *Store) DB() *tsdb.DB { return s.db }

// RawAppendable is where scraped samples go: the raw samples when the
// store keeps them apart (Options.Raw), else the TSDB.
func (s *Store) RawAppendable() storage.AppendableV2 {
	if s.raw != nil {
		return s.raw.head
	}
	return s.db
}

// TrimRaw drops the raw samples older than before; without Options.Raw it
// does nothing (the TSDB's retention applies).
func (s *Store) TrimRaw(before time.Time) error {
	if s.raw == nil {
		return nil
	}
	return s.raw.trim(before)
}

// Engine is the PromQL engine that answers queries over the store.
func (s *Store) Engine() *promql.Engine { return s.engine }

// CompactOutOfOrder writes the samples taken out of order (a backfill's
// history) to blocks, so that they leave memory now rather than at the
// head's next compaction.
func (s *Store) CompactOutOfOrder(ctx context.Context) error {
	if err := s.db.CompactOOOHead(ctx); err != nil {
		return fmt.Errorf("compacting out-of-order samples: %w", err)
	}
	return nil
}

// Appender starts a transaction.
func (s *Store) Appender(ctx context.Context) storage.Appender { return s.db.Appender(ctx) }

// MaxTime is the newest sample time in the store, or false when empty.
func (s *Store) MaxTime() (time.Time, bool) {
	t := s.db.Head().MaxTime()
	if t == math.MinInt64 {
		return time.Time{}, false
	}
	return time.UnixMilli(t), true
}

// Query evaluates an instant query over the store.
func (s *Store) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	return s.query(ctx, s, expr, ts)
}

// query evaluates expr at ts over what from reads of the store: directly
// where instantql evaluates it, with the engine otherwise.
func (s *Store) query(ctx context.Context, from storage.Queryable, expr string, ts time.Time) (promql.Vector, error) {
	if v, ok, err := s.queryDirect(ctx, from, expr, ts); ok {
		return v, err
	}
	q, err := s.engine.NewInstantQuery(ctx, from, nil, expr, ts)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", expr, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", expr, res.Err)
	}
	// The engine returns the result's memory to its pools on Close, so
	// the caller gets a copy.
	switch v := res.Value.(type) {
	case promql.Vector:
		return slices.Clone(v), nil
	case promql.Scalar:
		return promql.Vector{{Metric: labels.EmptyLabels(), T: v.T, F: v.V}}, nil
	default:
		return nil, fmt.Errorf("evaluating %q: expected an instant vector, got %s", expr, res.Value.Type())
	}
}

// queryDirect evaluates expr at ts over what from reads with instantql;
// ok is false when it leaves expr to the engine (one that does not parse
// too: the engine says why).
func (s *Store) queryDirect(ctx context.Context, from storage.Queryable, expr string, ts time.Time) (v promql.Vector, ok bool, err error) {
	defer func() {
		if ok {
			s.directQueries.Inc()
		} else {
			s.engineQueries.Inc()
		}
	}()
	if s.engineOnly {
		return nil, false, nil
	}
	e, err := s.parser.ParseExpr(expr)
	if err != nil {
		return nil, false, nil
	}
	q, err := instantql.Compile(e, LookbackDelta)
	if err != nil {
		return nil, false, nil
	}
	v, err = q.Eval(ctx, from, ts)
	switch {
	case errors.Is(err, instantql.ErrUnsupported):
		return nil, false, nil
	case err != nil:
		return nil, true, fmt.Errorf("evaluating %q: %w", expr, err)
	}
	return v, true, nil
}

// QueryRange evaluates a range query over the store.
func (s *Store) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	q, err := s.engine.NewRangeQuery(ctx, s, nil, expr, start, end, step)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", expr, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", expr, res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		return nil, fmt.Errorf("evaluating %q: %w", expr, err)
	}
	// The engine returns the points' memory to its pools on Close.
	out := make(promql.Matrix, len(m))
	for i, s := range m {
		out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats), Histograms: slices.Clone(s.Histograms)}
	}
	return out, nil
}
