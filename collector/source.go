package collector

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// Source answers PromQL queries over model-server metrics. Implementations
// return an empty result, not an error, when nothing matches; an error
// always means the query could not be answered.
type Source interface {
	// Query evaluates expr at ts.
	Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error)
	// QueryRange evaluates expr at every step from start to end.
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error)
}
