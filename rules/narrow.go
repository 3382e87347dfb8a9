package rules

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/signals"
)

// modelLocal reports whether expr gives each series of a model the value
// it would give it over the whole fleet when it reads only the series of
// that model and those without a model label: no aggregation, vector
// match, scalar() or absent() of it mixes series of several models, and
// no label_replace, label_join or count_values writes the model label. A part of
// expr that reads only series without a model label (the default SLO
// targets) may mix them freely: narrowing keeps all of them.
func modelLocal(expr parser.Expr) bool {
	local := true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.AggregateExpr:
			if slices.Contains(n.Grouping, signals.LabelModel) == n.Without && !modelless(n.Expr) {
				local = false
			}
			if s, ok := n.Param.(*parser.StringLiteral); ok && n.Op == parser.COUNT_VALUES && s.Val == signals.LabelModel {
				local = false
			}
		case *parser.BinaryExpr:
			vm := n.VectorMatching
			if vm == nil || n.LHS.Type() != parser.ValueTypeVector || n.RHS.Type() != parser.ValueTypeVector {
				break
			}
			if slices.Contains(vm.MatchingLabels, signals.LabelModel) != vm.On && !sidesKept(n) {
				local = false
			}
		case *parser.Call:
			switch n.Func.Name {
			case "scalar", "absent", "absent_over_time":
				if !modelless(n) {
					local = false
				}
			case "label_replace", "label_join":
				if dst, ok := n.Args[1].(*parser.StringLiteral); !ok || dst.Val == signals.LabelModel {
					local = false
				}
			}
		}
		return nil
	})
	return local
}

// sidesKept reports whether a vector match that may pair series of
// several models gives a series of the narrowed side what it gives it
// over the whole fleet: the side it is matched with keeps all its series
// (it is modelless), and that side's series are not in the answer.
func sidesKept(n *parser.BinaryExpr) bool {
	switch {
	case modelless(n.LHS) && modelless(n.RHS):
		return true
	case n.VectorMatching.Card == parser.CardManyToOne:
		return modelless(n.RHS)
	case n.VectorMatching.Card == parser.CardOneToMany:
		return modelless(n.LHS)
	case n.Op == parser.LAND || n.Op == parser.LUNLESS:
		return modelless(n.RHS)
	}
	return false
}

// modelless reports whether every series expr reads lacks the model
// label, so that narrowing to some models keeps all of them.
func modelless(expr parser.Node) bool {
	only := true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		// A range selector's vector selector is visited as its child.
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
			return m.Name == signals.LabelModel && m.Type == labels.MatchEqual && m.Value == ""
		}) {
			only = false
		}
		return nil
	})
	return only
}

// modelsQueryable reads, of every selector, the series of some models
// and those without a model label.
type modelsQueryable struct {
	storage.Queryable
	matcher *labels.Matcher
}

func narrowToModels(q storage.Queryable, models []string) (storage.Queryable, error) {
	alts := make([]string, 0, len(models)+1)
	for _, m := range models {
		alts = append(alts, regexp.QuoteMeta(m))
	}
	// The empty alternative keeps the series without a model label.
	m, err := labels.NewMatcher(labels.MatchRegexp, signals.LabelModel, strings.Join(append(alts, ""), "|"))
	if err != nil {
		return nil, err
	}
	return modelsQueryable{Queryable: q, matcher: m}, nil
}

func (q modelsQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return modelsQuerier{Querier: inner, matcher: q.matcher}, nil
}

type modelsQuerier struct {
	storage.Querier
	matcher *labels.Matcher
}

func (q modelsQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.Querier.Select(ctx, sortSeries, hints, append(slices.Clip(ms), q.matcher)...)
}

// modelLocalFiles reports whether every rule of files is modelLocal. A
// rule that does not parse is not: the evaluation will say why.
func modelLocalFiles(files []*RuleFile) bool {
	p := newParser()
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				expr, err := p.ParseExpr(r.Expr)
				if err != nil || !modelLocal(expr) {
					return false
				}
			}
		}
	}
	return true
}
