package collector

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/optiinfra/perfagent/signalstore"
)

// profileQueries parses fresh copies of the profiles' queries and the
// engines' settings queries, for callers that rewrite them.
func profileQueries(profiles []*Profile) ([]parser.Expr, error) {
	var exprs []parser.Expr
	for _, p := range profiles {
		for _, r := range p.Rules {
			e, err := NewParser().ParseExpr(r.Expr.String())
			if err != nil {
				return nil, fmt.Errorf("%s:%d: re-parsing %q: %w", p.File, r.Line, r.Expr, err)
			}
			exprs = append(exprs, e)
		}
	}
	for engine, q := range builtinSettingsQueries() {
		e, err := NewParser().ParseExpr(q.expr)
		if err != nil {
			return nil, fmt.Errorf("the %s settings query %q: %w", engine, q.expr, err)
		}
		exprs = append(exprs, e)
	}
	return exprs, nil
}

// readFamilies is the regular expression of the metric names exprs read,
// which are all the embedded source has to keep of a scrape. ok is false
// when some selector does not name its metric (as {job="x"} or
// {__name__!="y"} do): then every family is needed.
func readFamilies(exprs []parser.Expr) (regex string, ok bool) {
	var names []string
	ok = true
	for _, e := range exprs {
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, isSelector := n.(*parser.VectorSelector)
			if !isSelector {
				return nil
			}
			name := metricNameMatcher(vs.LabelMatchers)
			if name == "" {
				ok = false
			}
			names = append(names, name)
			return nil
		})
	}
	if !ok {
		return "", false
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), "|"), true
}

// metricNameMatcher is the matcher on the metric name as a regular
// expression (Prometheus anchors it), or empty when there is none that
// bounds the names.
func metricNameMatcher(ms []*labels.Matcher) string {
	for _, m := range ms {
		if m.Name != model.MetricNameLabel {
			continue
		}
		switch m.Type {
		case labels.MatchEqual:
			return regexp.QuoteMeta(m.Value)
		case labels.MatchRegexp:
			return "(?:" + m.Value + ")"
		}
	}
	return ""
}

// reach is how far before its evaluation time the furthest-reaching of
// exprs reads, as Prometheus's engine selects samples: a range and its
// offset, a subquery's range, or the lookback of an instant selector.
func reach(exprs []parser.Expr) time.Duration {
	// Any evaluation time does; this one keeps the arithmetic far from
	// either end of int64.
	at := time.UnixMilli(1 << 40)
	var longest time.Duration
	for _, e := range exprs {
		mint, maxt := promql.FindMinMaxTime(&parser.EvalStmt{Expr: e, Start: at, End: at, LookbackDelta: signalstore.LookbackDelta})
		if mint == 0 && maxt == 0 {
			continue // no selector: the engine's answer for reading nothing
		}
		// mint is the oldest millisecond read: a window excludes its
		// own start.
		longest = max(longest, at.Sub(time.UnixMilli(mint))+time.Millisecond)
	}
	return longest
}
