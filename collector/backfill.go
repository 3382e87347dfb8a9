package collector

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/signals"
)

// Backfill computes signal history over [from, to] with one range query
// per rule and appends it, so rules and the API have history right after
// a start. It skips time the store already holds. It returns how many
// samples were written.
func (c *Collector) Backfill(ctx context.Context, from, to time.Time, step time.Duration) (int, error) {
	if c.store == nil {
		return 0, nil
	}
	if last, ok := c.store.MaxTime(); ok && last.After(from) {
		from = last.Add(step)
	}
	if !from.Before(to) {
		return 0, nil
	}
	c.mtx.RLock()
	src, profiles, facts := c.source, c.profiles, c.facts
	c.mtx.RUnlock()

	type key struct {
		instance string
		t        int64
	}
	app := c.store.Appender(ctx)
	written := 0
	for _, p := range profiles {
		owned := map[key]string{} // instance and time → model
		for j, r := range p.rules {
			m, err := src.QueryRange(ctx, r.Query().String(), from, to, step)
			if err != nil {
				_ = app.Rollback()
				return 0, fmt.Errorf("backfilling %s rule %s: %w", p.file, r.Name(), err)
			}
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
