package collector

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/optiinfra/perfagent/signals"
)

// narrowedSource asks its source for the series of some instances only:
// every selector of every expression gets an instance matcher, so that a
// collection of one instance costs the source that instance's series, not
// the fleet's. The profiles' expressions compute each instance's signals
// from its own series, so the answers for those instances are the ones a
// whole collection gives.
type narrowedSource struct {
	Source
	matcher *labels.Matcher
}

// narrow returns src asking for the series of instances only.
func narrow(src Source, instances []string) (Source, error) {
	var m *labels.Matcher
	var err error
	if len(instances) == 1 {
		m, err = labels.NewMatcher(labels.MatchEqual, signals.LabelInstance, instances[0])
	} else {
		quoted := make([]string, len(instances))
		for i, in := range instances {
			quoted[i] = regexp.QuoteMeta(in)
		}
		m, err = labels.NewMatcher(labels.MatchRegexp, signals.LabelInstance, strings.Join(quoted, "|"))
	}
	if err != nil {
		return nil, fmt.Errorf("matching instances %v: %w", instances, err)
	}
	return narrowedSource{Source: src, matcher: m}, nil
}

// narrowExpr adds the instance matcher to every selector of expr.
func (s narrowedSource) narrowExpr(expr string) (string, error) {
	e, err := NewParser().ParseExpr(expr)
	if err != nil {
		return "", fmt.Errorf("narrowing %q to instances: %w", expr, err)
	}
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			vs.LabelMatchers = append(vs.LabelMatchers, s.matcher)
		}
		return nil
	})
	return e.String(), nil
}

func (s narrowedSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	narrowed, err := s.narrowExpr(expr)
	if err != nil {
		return nil, err
	}
	return s.Source.Query(ctx, narrowed, ts)
}

func (s narrowedSource) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	narrowed, err := s.narrowExpr(expr)
	if err != nil {
		return nil, err
	}
	return s.Source.QueryRange(ctx, narrowed, start, end, step)
}
