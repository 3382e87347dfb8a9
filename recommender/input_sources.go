package recommender

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/rules"
)

// Findings turns the firing bottlenecks among bs into the recommender's
// input; pending ones are left out, as they may yet clear by themselves.
func Findings(bs []rules.Bottleneck) []Finding {
	var out []Finding
	for _, b := range bs {
		if b.State != rules.StateFiring {
			continue
		}
		out = append(out, Finding{
			Bottleneck: b.ID, Rule: b.Rule, Instance: b.Instance, Engine: b.Engine, Model: b.Model,
			Recommend: slices.Clone(b.Recommendations), Since: b.ActiveAt, Value: b.Value,
		})
	}
	return out
}

// ReadHistory reads, for every instance at once, the batch size and the
// p95 inter-token latency over [now-window, now] at step: two range
// queries whatever the fleet size. Points are joined by time.
func ReadHistory(ctx context.Context, src collector.Source, now time.Time, window, step time.Duration) (map[string][]Point, error) {
	start := now.Add(-window)
	running, err := src.QueryRange(ctx, "llm_requests_running", start, now, step)
	if err != nil {
		return nil, fmt.Errorf("reading batch-size history: %w", err)
	}
	itl, err := src.QueryRange(ctx, `llm_inter_token_latency_seconds{quantile="0.95"}`, start, now, step)
	if err != nil {
		return nil, fmt.Errorf("reading inter-token latency history: %w", err)
	}
	batch := make(map[string][]promql.FPoint, len(running))
	for _, s := range running {
		batch[s.Metric.Get(model.InstanceLabel)] = s.Floats
	}
	// Both queries step through the same times, oldest first, so a merge
	// joins them without an index per instance.
	out := make(map[string][]Point, len(itl))
	for _, s := range itl {
		inst := s.Metric.Get(model.InstanceLabel)
		runs := batch[inst]
		points := out[inst]
		if points == nil {
			points = make([]Point, 0, len(s.Floats))
		}
		for _, p := range s.Floats {
			for len(runs) > 0 && runs[0].T < p.T {
				runs = runs[1:]
			}
			if len(runs) > 0 && runs[0].T == p.T {
				points = append(points, Point{Time: time.UnixMilli(p.T), Running: runs[0].F, ITL: p.F})
			}
		}
		if len(points) > 0 {
			out[inst] = points
		}
	}
	return out, nil
}
