package collector

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/signals"
)

// Backfill computes signal history over [from, to] with a range query per
// rule, or per histogram for quantile rules when the source's plan shares
// them, and appends it, so rules and the API have history right after
// a start. It returns how many samples were written. The caller leaves
// out the time the store holds already: samples older than the store's
// newest go in out of order, within its out-of-order window.
func (c *Collector) Backfill(ctx context.Context, from, to time.Time, step time.Duration) (int, error) {
	if c.store == nil {
		return 0, nil
	}
	if !from.Before(to) {
		return 0, nil
	}
	c.mtx.RLock()
	src, profiles, facts := c.source, c.profiles, c.facts
	c.mtx.RUnlock()

	matrices, err := fetchHistory(ctx, src, planOf(src), profiles, from, to, step)
	if err != nil {
		return 0, err
	}

	type key struct {
		instance string
		t        int64
	}
	app := c.store.Appender(ctx)
	written := 0
	for i, p := range profiles {
		owned := map[key]string{} // instance and time → model
		for j, r := range p.rules {
			m := matrices[i][j]
			for _, series := range m {
				lb := labels.NewBuilder(series.Metric)
				lb.Set(model.MetricNameLabel, r.Name())
				r.Labels().Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
				inst := series.Metric.Get(signals.LabelInstance)
				if pin := facts[inst].Engine; pin != "" && pin != p.engine {
					continue
				}
				if m := facts[inst].Model; m != "" {
					lb.Set(signals.LabelModel, m)
				}
				var kept []promql.FPoint
				for _, pt := range series.Floats {
					k := key{inst, pt.T}
					if j == 0 {
						owned[k] = lb.Get(signals.LabelModel)
					}
					mdl, ok := owned[k]
					if !ok || math.IsNaN(pt.F) || math.IsInf(pt.F, 0) {
						continue
					}
					if lb.Get(signals.LabelModel) == "" {
						lb.Set(signals.LabelModel, mdl)
					}
					kept = append(kept, pt)
				}
				n, err := appendWithStaleness(app, lb.Labels(), kept, step.Milliseconds(), to.UnixMilli())
				written += n
				if err != nil {
					_ = app.Rollback()
					return 0, fmt.Errorf("appending backfilled %s: %w", r.Name(), err)
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		return 0, fmt.Errorf("committing backfill: %w", err)
	}
	return written, nil
}

// fetchHistory asks src for every rule's range over [from, to], as plan
// says: quantiles of one histogram from one range query of their shared
// argument, and up to plan.concurrency queries in flight (one at a time
// for the zero plan).
func fetchHistory(ctx context.Context, src Source, plan queryPlan, profiles []*compiledProfile, from, to time.Time, step time.Duration) ([][]promql.Matrix, error) {
	out := make([][]promql.Matrix, len(profiles))
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, max(plan.concurrency, 1))
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel()
		}
	}
	native := false
	if plan.nativeHistograms != nil {
		var err error
		if native, err = hasNativeHistograms(ctx, src.Query, profiles, to); err != nil {
			return out, fmt.Errorf("backfilling: %w", err)
		}
	}
	for i, p := range profiles {
		out[i] = make([]promql.Matrix, len(p.rules))
		for _, s := range planSteps(p.rules, plan) {
			wg.Go(func() {
				select {
				case slots <- struct{}{}:
					defer func() { <-slots }()
				case <-ctx.Done():
					return
				}
				r := p.rules[s.rules[0]]
				expr := s.shared
				if expr == "" {
					expr = r.Query().String()
				}
				if native {
					expr = plan.nativeHistograms.rewrite(expr)
				}
				m, err := src.QueryRange(ctx, expr, from, to, step)
				if err != nil {
					fail(fmt.Errorf("backfilling %s rule %s: %w", p.file, r.Name(), err))
					return
				}
				if s.shared == "" {
					out[i][s.rules[0]] = m
					return
				}
				if s.rename != "" {
					m = matrixAsModel(m, s.rename)
				}
				for n, j := range s.rules {
					out[i][j] = matrixQuantile(s.quantiles[n], m)
				}
			})
		}
	}
	wg.Wait()
	if first == nil && parent.Err() != nil {
		first = fmt.Errorf("backfilling: %w", parent.Err())
	}
	return out, first
}

// matrixQuantile is histogram_quantile(q, m) at every step of a range
// query's result, as the source would answer the range query of the
// quantile.
func matrixQuantile(q float64, m promql.Matrix) promql.Matrix {
	byTime := map[int64]promql.Vector{}
	var times []int64
	add := func(s promql.Sample) {
		if _, ok := byTime[s.T]; !ok {
			times = append(times, s.T)
		}
		byTime[s.T] = append(byTime[s.T], s)
	}
	for _, s := range m {
		for _, p := range s.Floats {
			add(promql.Sample{Metric: s.Metric, T: p.T, F: p.F})
		}
		for _, p := range s.Histograms {
			add(promql.Sample{Metric: s.Metric, T: p.T, H: p.H})
		}
	}
	slices.Sort(times)
	series := map[string]*promql.Series{}
	var out promql.Matrix
	var order []string
	for _, t := range times {
		for _, s := range histogramQuantile(q, byTime[t]) {
			k := s.Metric.String()
			ss, ok := series[k]
			if !ok {
				ss = &promql.Series{Metric: s.Metric}
				series[k] = ss
				order = append(order, k)
			}
			ss.Floats = append(ss.Floats, promql.FPoint{T: t, F: s.F})
		}
	}
	for _, k := range order {
		out = append(out, *series[k])
	}
	return out
}

// appendWithStaleness appends points and, where the series stops before
// the end of the range or has a gap, a staleness marker one step after its
// last point, as the live cycle does, so queries do not carry the last
// value forward over the lookback window.
func appendWithStaleness(app storage.Appender, ls labels.Labels, points []promql.FPoint, step, end int64) (int, error) {
	for i, pt := range points {
		if _, err := app.Append(0, ls, pt.T, pt.F); err != nil {
			return i, err
		}
		next := pt.T + step
		gap := i+1 < len(points) && points[i+1].T > next
		last := i+1 == len(points) && next <= end
		if gap || last {
			if _, err := app.Append(0, ls, next, math.Float64frombits(value.StaleNaN)); err != nil {
				return i + 1, err
			}
		}
	}
	return len(points), nil
}
