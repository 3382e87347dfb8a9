package rules

import (
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/optiinfra/perfagent/signals"
)

// vectorSelectors returns every vector selector in expr, in order.
func vectorSelectors(expr parser.Expr) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// selectorName is the metric name a selector reads, or "" when it selects
// by other matchers only.
func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// isSLOSeries reports whether name is one of the SLO target series.
func isSLOSeries(name string) bool { return slices.Contains(SLOSeries(), name) }

// isKnownSeries reports whether rules may read name: a signal of the
// collector's catalog or an SLO target series.
func isKnownSeries(name string) bool {
	if _, ok := signals.Lookup(name); ok {
		return true
	}
	return isSLOSeries(name)
}

// lookback is how far back expr reads: its longest range (with offset),
// for range selectors and subqueries.
func lookback(expr parser.Expr) time.Duration {
	var longest time.Duration
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.MatrixSelector:
			d := n.Range
			if vs, ok := n.VectorSelector.(*parser.VectorSelector); ok {
				d += vs.OriginalOffset
			}
			longest = max(longest, d)
		case *parser.SubqueryExpr:
			longest = max(longest, n.Range+n.OriginalOffset)
		}
		return nil
	})
	return longest
}
