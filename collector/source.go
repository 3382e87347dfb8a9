package collector

import (
	"context"
	"errors"
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

// onceReader is a Source whose queries at one evaluation time can share
// their reads of the samples and the subexpressions they repeat
// (EmbeddedSource).
type onceReader interface {
	// readingOnce returns the Source for one evaluation of queries.
	readingOnce(queries []string) Source
}

// ErrUnavailable is matched (errors.Is) by the errors of a Source that
// could not be reached or was overloaded, as opposed to one that refused
// a query. One such error fails the whole cycle: a source that went away
// in the middle of a cycle answered only part of it, and rules reading a
// snapshot with signals missing would resolve bottlenecks for want of
// data.
var ErrUnavailable = errors.New("metrics source unavailable")

// unavailableError marks err as ErrUnavailable; its message is err's.
type unavailableError struct{ err error }

func (e unavailableError) Error() string        { return e.err.Error() }
func (e unavailableError) Unwrap() error        { return e.err }
func (e unavailableError) Is(target error) bool { return target == ErrUnavailable }
