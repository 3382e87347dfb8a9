package signalstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/optiinfra/perfagent/internal/once"
)

// ReadCache answers many queries over the store as one read: the series
// of a metric over one range (a range selector at one evaluation time)
// are read from the store and decoded once, and every range selector of
// that metric over that range, whatever its other matchers, picks its
// series from what was read. A cycle's queries read the same histogram
// several times over the same rate window (its mean, and the request
// stages that subtract it), and reading a native histogram from its
// chunks is what those reads cost.
//
// It sees the store as it was when each metric was first read: a sample
// appended later does not change the answers that follow. It holds every
// series it read until it is dropped, so it is made for the queries of
// one evaluation and then let go. Instant selectors, and selectors that
// do not name their metric, read the store as usual.
type ReadCache struct {
	store *Store
	// reads are the series of each metric over each range read, sorted
	// by labels.
	reads once.Map[readKey, []cachedSeries]
}

// NewReadCache returns an empty cache over s.
func (s *Store) NewReadCache() *ReadCache {
	return &ReadCache{store: s}
}

// Query evaluates expr at ts as Store.Query does, reading through c.
func (c *ReadCache) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	return c.store.query(ctx, c, expr, ts)
}

// Querier implements storage.Queryable.
func (c *ReadCache) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := c.store.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &cacheQuerier{Querier: q, cache: c}, nil
}

type readKey struct {
	metric     string
	start, end int64
}

type cachedSeries struct {
	labels  labels.Labels
	samples cachedSamples
}

// cachedSample is a float, an integer histogram (h) or a float histogram
// (fh).
type cachedSample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s *cachedSample) T() int64                      { return s.t }
func (s *cachedSample) ST() int64                     { return 0 }
func (s *cachedSample) F() float64                    { return s.f }
func (s *cachedSample) H() *histogram.Histogram       { return s.h }
func (s *cachedSample) FH() *histogram.FloatHistogram { return s.fh }

func (s *cachedSample) Type() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	default:
		return chunkenc.ValFloat
	}
}

func (s *cachedSample) Copy() chunks.Sample {
	c := *s
	if s.h != nil {
		c.h = s.h.Copy()
	}
	if s.fh != nil {
		c.fh = s.fh.Copy()
	}
	return &c
}

// cachedSamples lists a series' samples for upstream's list iterator.
type cachedSamples []cachedSample

func (s cachedSamples) Get(i int) chunks.Sample { return &s[i] }
func (s cachedSamples) Len() int                { return len(s) }

// series returns the series of metric over [hints.Start, hints.End],
// reading them on first use.
func (c *ReadCache) series(ctx context.Context, metric string, hints *storage.SelectHints) ([]cachedSeries, error) {
	return c.reads.Get(readKey{metric: metric, start: hints.Start, end: hints.End}, func() ([]cachedSeries, error) {
		return c.read(ctx, metric, hints)
	})
}

// read decodes every sample of metric in [hints.Start, hints.End].
func (c *ReadCache) read(ctx context.Context, metric string, hints *storage.SelectHints) (series []cachedSeries, err error) {
	q, err := c.store.Querier(hints.Start, hints.End)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := q.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing a read of %s: %w", metric, cerr)
		}
	}()
	set := q.Select(ctx, true, &storage.SelectHints{Start: hints.Start, End: hints.End, Range: hints.Range}, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, metric))
	var (
		it chunkenc.Iterator
		// The most samples a series had so far: the series of a
		// metric are scraped together, so the next has as many.
		most int
	)
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		cs := cachedSeries{labels: s.Labels(), samples: make([]cachedSample, 0, most)}
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			var sample cachedSample
			switch vt {
			case chunkenc.ValFloat:
				sample.t, sample.f = it.At()
			case chunkenc.ValHistogram:
				sample.t, sample.h = it.AtHistogram(nil)
			case chunkenc.ValFloatHistogram:
				sample.t, sample.fh = it.AtFloatHistogram(nil)
			}
			cs.samples = append(cs.samples, sample)
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", s.Labels(), err)
		}
		most = max(most, len(cs.samples))
		series = append(series, cs)
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", metric, err)
	}
	return series, nil
}

// cacheQuerier reads range selectors that name their metric through its
// cache, everything else through the store.
type cacheQuerier struct {
	storage.Querier
	cache *ReadCache
}

// Select implements storage.Querier.
func (q *cacheQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	metric, named := metricName(ms)
	if !named || hints == nil || hints.Range == 0 || hints.ShardCount > 0 || hints.Limit > 0 {
		return q.Querier.Select(ctx, sortSeries, hints, ms...)
	}
	all, err := q.cache.series(ctx, metric, hints)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	set := &cachedSeriesSet{i: -1}
	for i := range all {
		if matchesAll(ms, all[i].labels) {
			set.series = append(set.series, &all[i])
		}
	}
	return set
}

func matchesAll(ms []*labels.Matcher, ls labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// cachedSeriesSet lists cached series in label order.
type cachedSeriesSet struct {
	series []*cachedSeries
	i      int
}

func (s *cachedSeriesSet) Next() bool {
	s.i++
	return s.i < len(s.series)
}

func (s *cachedSeriesSet) At() storage.Series                { return s.series[s.i] }
func (s *cachedSeriesSet) Err() error                        { return nil }
func (s *cachedSeriesSet) Warnings() annotations.Annotations { return nil }

// Labels implements storage.Series.
func (s *cachedSeries) Labels() labels.Labels { return s.labels }

// Iterator implements storage.Series.
func (s *cachedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if c, ok := it.(*copyingIterator); ok {
		if l, ok := c.Iterator.(interface{ Reset(storage.Samples) }); ok {
			l.Reset(s.samples)
			return c
		}
	}
	return &copyingIterator{storage.NewListSeriesIterator(s.samples)}
}

// copyingIterator walks the samples of a cached series and hands out
// copies of its histograms: the engine writes into the histograms it is
// given.
type copyingIterator struct {
	chunkenc.Iterator
}

func (it *copyingIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	t, cached := it.Iterator.AtHistogram(nil)
	if h == nil {
		return t, cached.Copy()
	}
	cached.CopyTo(h)
	return t, h
}

func (it *copyingIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	t, cached := it.Iterator.AtFloatHistogram(nil)
	if cached == nil {
		// An integer histogram, which the list iterator does not convert.
		_, h := it.Iterator.AtHistogram(nil)
		return t, h.ToFloat(fh)
	}
	if fh == nil {
		return t, cached.Copy()
	}
	cached.CopyTo(fh)
	return t, fh
}

// QueryComputed evaluates expr at ts as Query does, where a selector of a
// metric that computed names reads that vector instead of the store: its
// samples, at their times, with their labels as they are. It lets a
// result computed once stand for the subexpression that computed it in
// the queries that repeat it.
func (c *ReadCache) QueryComputed(ctx context.Context, expr string, ts time.Time, computed map[string]promql.Vector) (promql.Vector, error) {
	return c.store.query(ctx, computedQueryable{cache: c, computed: computed}, expr, ts)
}

type computedQueryable struct {
	cache    *ReadCache
	computed map[string]promql.Vector
}

func (q computedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	cq, err := q.cache.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &computedQuerier{Querier: cq, computed: q.computed}, nil
}

type computedQuerier struct {
	storage.Querier
	computed map[string]promql.Vector
}

// Select implements storage.Querier.
func (q *computedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	metric, named := metricName(ms)
	v, ok := q.computed[metric]
	if !named || !ok {
		return q.Querier.Select(ctx, sortSeries, hints, ms...)
	}
	set := &cachedSeriesSet{i: -1, series: make([]*cachedSeries, len(v))}
	for i, s := range v {
		set.series[i] = &cachedSeries{labels: s.Metric, samples: cachedSamples{{t: s.T, f: s.F, fh: s.H}}}
	}
	if sortSeries {
		slices.SortFunc(set.series, func(a, b *cachedSeries) int { return labels.Compare(a.labels, b.labels) })
	}
	return set
}
