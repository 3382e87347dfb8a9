package prom

import (
	"context"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// targetView shows a store as a Prometheus scraping the agent with
// honor_labels: true stores it: a series that lacks a target label (job,
// instance) has the agent's. The signals and SLO targets the agent records
// carry no job, and the SLO targets no instance; dashboards select by job
// as they do on a Prometheus that scrapes the agent.
type targetView struct {
	storage.SampleAndChunkQueryable
	target labels.Labels
}

// Querier implements storage.Queryable.
func (v targetView) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := v.SampleAndChunkQueryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &targetQuerier{q: q, target: v.target}, nil
}

type targetQuerier struct {
	q      storage.Querier
	target labels.Labels
}

// split separates the matchers on target labels, which the view decides,
// from those the store decides.
func (q *targetQuerier) split(ms []*labels.Matcher) (store, target []*labels.Matcher) {
	for _, m := range ms {
		if q.target.Has(m.Name) {
			target = append(target, m)
		} else {
			store = append(store, m)
		}
	}
	if len(store) == 0 {
		// The store wants one matcher that selects something.
		store = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
	}
	return store, target
}

// withTarget adds the target labels a series lacks.
func (q *targetQuerier) withTarget(b *labels.Builder, l labels.Labels) labels.Labels {
	b.Reset(l)
	q.target.Range(func(t labels.Label) {
		if l.Get(t.Name) == "" {
			b.Set(t.Name, t.Value)
		}
	})
	return b.Labels()
}

func (q *targetQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	storeMs, targetMs := q.split(ms)
	set := q.q.Select(ctx, false, hints, storeMs...)
	var (
		out []storage.Series
		b   = labels.NewBuilder(labels.EmptyLabels())
	)
next:
	for set.Next() {
		s := set.At()
		l := q.withTarget(b, s.Labels())
		for _, m := range targetMs {
			if !m.Matches(l.Get(m.Name)) {
				continue next
			}
		}
		out = append(out, &storage.SeriesEntry{Lset: l, SampleIteratorFn: s.Iterator})
	}
	if set.Err() != nil {
		return storage.ErrSeriesSet(set.Err())
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &seriesList{series: out, warnings: set.Warnings()}
}

// LabelValues answers from the store with the target's value of a target
// label when some selected series lacks it; with a matcher on a target
// label, from the series Select shows.
func (q *targetQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	storeMs, targetMs := q.split(ms)
	if len(targetMs) > 0 {
		return q.fromSeries(ctx, ms, func(l labels.Labels, add func(string)) { add(l.Get(name)) })
	}
	values, warnings, err := q.q.LabelValues(ctx, name, hints, ms...)
	if err != nil || !q.target.Has(name) {
		return values, warnings, err
	}
	lacking := q.q.Select(ctx, false, nil, append(storeMs, labels.MustNewMatcher(labels.MatchEqual, name, ""))...)
	if lacking.Next() {
		values = append(values, q.target.Get(name))
		slices.Sort(values)
		values = slices.Compact(values)
	}
	return values, warnings.Merge(lacking.Warnings()), lacking.Err()
}

// LabelNames answers from the store, adding the target labels, which
// every series of the view has; with a matcher on a target label, from
// the series Select shows.
func (q *targetQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if _, targetMs := q.split(ms); len(targetMs) > 0 {
		return q.fromSeries(ctx, ms, func(l labels.Labels, add func(string)) {
			l.Range(func(l labels.Label) { add(l.Name) })
		})
	}
	names, warnings, err := q.q.LabelNames(ctx, hints, ms...)
	if err != nil || len(names) == 0 {
		return names, warnings, err
	}
	q.target.Range(func(t labels.Label) { names = append(names, t.Name) })
	slices.Sort(names)
	return slices.Compact(names), warnings, nil
}

// fromSeries collects the strings each selected series yields, sorted
// and without duplicates or empty ones.
func (q *targetQuerier) fromSeries(ctx context.Context, ms []*labels.Matcher, yield func(labels.Labels, func(string))) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" {
			seen[s] = true
		}
	}
	set := q.Select(ctx, false, nil, ms...)
	for set.Next() {
		yield(set.At().Labels(), add)
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out, set.Warnings(), set.Err()
}

func (q *targetQuerier) Close() error { return q.q.Close() }

// seriesList is a storage.SeriesSet over series in memory.
type seriesList struct {
	series   []storage.Series
	cur      int
	warnings annotations.Annotations
}

func (s *seriesList) Next() bool {
	if s.cur >= len(s.series) {
		return false
	}
	s.cur++
	return true
}

func (s *seriesList) At() storage.Series                { return s.series[s.cur-1] }
func (s *seriesList) Err() error                        { return nil }
func (s *seriesList) Warnings() annotations.Annotations { return s.warnings }
