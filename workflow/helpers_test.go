package workflow

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// fakeSource answers range queries from a function of the signal and the
// side (the instances named in the query).
type fakeSource struct {
	mu      sync.Mutex
	rangeFn func(signal, instances string, start, end time.Time) ([]float64, error)
	queryFn func(expr string) (promql.Vector, error)
	exprs   []string
}

// restartQuery starts the validator's query for counter resets.
const restartQuery = "max by (instance) ("

// parseExpr extracts the signal and the instance regexp of a validator query.
func parseExpr(expr string) (signal, instances string) {
	inner := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(expr, "avg("), restartQuery), ")")
	signal, _, _ = strings.Cut(inner, "{")
	if _, rest, ok := strings.Cut(inner, `instance=~"`); ok {
		instances, _, _ = strings.Cut(rest, `"`)
	}
	return signal, instances
}

func (f *fakeSource) Query(_ context.Context, expr string, _ time.Time) (promql.Vector, error) {
	f.mu.Lock()
	f.exprs = append(f.exprs, expr)
	f.mu.Unlock()
	if f.queryFn != nil {
		return f.queryFn(expr)
	}
	if strings.HasPrefix(expr, "avg(llm_request_error_ratio{") {
		return promql.Vector{{F: 0.01, Metric: labels.EmptyLabels()}}, nil
	}
	return promql.Vector{{F: 1, Metric: labels.EmptyLabels()}}, nil
}

func (f *fakeSource) QueryRange(_ context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	f.mu.Lock()
	f.exprs = append(f.exprs, expr)
	f.mu.Unlock()
	signal, inst := parseExpr(expr)
	vals, err := f.rangeFn(signal, inst, start, end)
	if err != nil || len(vals) == 0 {
		return nil, err
	}
	s := promql.Series{Metric: labels.EmptyLabels()}
	if strings.HasPrefix(expr, restartQuery) {
		// Counter resets are asked per instance; the fake reports the
		// whole side as one instance.
		s.Metric = labels.FromStrings("instance", strings.ReplaceAll(inst, `\\`, ""))
	}
	for i, v := range vals {
		s.Floats = append(s.Floats, promql.FPoint{T: start.Add(time.Duration(i) * step).UnixMilli(), F: v})
	}
	return promql.Matrix{s}, nil
}

// noisy returns n values around level with a small repeating spread.
func noisy(level float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = level * (1 + 0.02*float64(i%7-3)/3)
	}
	return out
}

// healthy gives every signal the same distribution on both sides, and no
// counter resets.
func healthy(signal, _ string, _, _ time.Time) ([]float64, error) {
	switch signal {
	case "llm_engine_restarts":
		return nil, nil
	case "llm_request_error_ratio":
		return noisy(0.01, 60), nil
	case "llm_requests_per_second":
		return noisy(5, 60), nil
	}
	return noisy(1, 60), nil
}
