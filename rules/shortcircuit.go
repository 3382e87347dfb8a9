package rules

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
)

// shortCircuit wraps qf so that a chain of `and` and `unless`
// (`A and B …`, `A unless B …`, with or without matching clauses) is
// answered empty without evaluating the rest when its leftmost operand A
// is empty: both operators keep only series of their left side. The
// engine evaluates every operand whatever the left side holds, and the
// bottleneck rules are written as a selective condition (a KV cache over
// 90 %, five requests waiting) followed by the conditions that tell one
// bottleneck from another, each over the whole fleet. In a fleet without
// the bottleneck the first is empty, and the rest was most of the rule's
// cost.
//
// An `or` of such chains (the forecasts: one per instance, one per pool)
// is answered the same way, alternative by alternative: those whose
// leftmost operand is empty are left out of the expression evaluated,
// since `A or B` is B when A is empty and A when B is; when all are
// empty, so is the answer.
//
// What is evaluated is always the expression as written, or it without
// alternatives known to be empty, so the answer is the engine's. What
// waits until an operand has series are the errors and warnings that
// only evaluating the rest would raise (a many-to-many match); the text
// was checked at load.
func shortCircuit(qf promrules.QueryFunc) promrules.QueryFunc {
	var (
		mtx sync.Mutex
		// plans holds the plan of each expression that mentions `and`
		// or `unless`, nil for those that have none: the rules'
		// expressions, a few dozen. Other queries (the evidence's
		// selectors, one per active bottleneck) are not parsed here,
		// and a caller asking ever new chains is answered without the
		// map growing past maxChains.
		plans = map[string]*chainPlan{}
	)
	return func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
		if !mayChain(q) {
			return qf(ctx, q, t)
		}
		mtx.Lock()
		p, ok := plans[q]
		mtx.Unlock()
		if !ok {
			p = planChains(q)
			mtx.Lock()
			if len(plans) < maxChains {
				plans[q] = p
			}
			mtx.Unlock()
		}
		if p == nil {
			return qf(ctx, q, t)
		}
		var kept uint64
		for i, probe := range p.probes {
			if probe == "" {
				kept |= 1 << i
				continue
			}
			v, err := qf(ctx, probe, t)
			if err != nil {
				return qf(ctx, q, t)
			}
			if len(v) > 0 {
				kept |= 1 << i
			}
		}
		switch kept {
		case 0:
			return promql.Vector{}, nil
		case 1<<len(p.probes) - 1:
			return qf(ctx, q, t)
		}
		return qf(ctx, p.without(kept), t)
	}
}

// maxChains bounds the expressions shortCircuit keeps parsed, and
// maxAlternatives the alternatives of one `or` it looks into.
const (
	maxChains       = 1024
	maxAlternatives = 16
)

// mayChain reports whether q has the word of an `and` or `unless`
// anywhere (in any case, as PromQL's keywords).
func mayChain(q string) bool {
	q = strings.ToLower(q)
	return strings.Contains(q, "and") || strings.Contains(q, "unless")
}

// chainPlan is what shortCircuit knows of one expression: the
// alternatives of its `or` (one when it has none) inside the calls that
// wrap it.
type chainPlan struct {
	// wrappers are the label_replace and label_join calls around the
	// expression, the outermost first: the manager sets an alert's
	// plain labels so (withLabels), and each is empty when its
	// argument is.
	wrappers []*parser.Call
	root     parser.Expr
	// probes are the leftmost operands of the alternatives' chains of
	// `and` and `unless`, in the order of alternativesOf; "" for an
	// alternative that is no chain.
	probes []string

	mtx sync.Mutex
	// queries are the expressions without some alternatives, by the
	// set of those kept.
	queries map[uint64]string
}

// planChains is the plan of q, nil when no alternative of q is a chain
// (nothing to gain), when it has more than maxAlternatives, or when q
// does not parse (the engine says why).
func planChains(q string) *chainPlan {
	e, err := newParser().ParseExpr(q)
	if err != nil {
		return nil
	}
	p := &chainPlan{queries: map[uint64]string{}}
	e = unparen(e)
	for {
		c, ok := e.(*parser.Call)
		if !ok || c.Func.Name != "label_replace" && c.Func.Name != "label_join" {
			break
		}
		p.wrappers = append(p.wrappers, c)
		e = unparen(c.Args[0])
	}
	p.root = e
	chains := 0
	for _, alt := range alternativesOf(e) {
		probe := leftmostOperand(alt)
		if probe != "" {
			chains++
		}
		p.probes = append(p.probes, probe)
	}
	if chains == 0 || len(p.probes) > maxAlternatives {
		return nil
	}
	return p
}

// alternativesOf lists the operands of e's `or` operations, left to
// right; e alone when it is no `or`.
func alternativesOf(e parser.Expr) []parser.Expr {
	e = unparen(e)
	b, ok := e.(*parser.BinaryExpr)
	if !ok || b.Op != parser.LOR {
		return []parser.Expr{e}
	}
	return append(alternativesOf(b.LHS), alternativesOf(b.RHS)...)
}

// leftmostOperand is the leftmost operand of e when e is a chain of
// `and` and `unless` operations, "" otherwise.
func leftmostOperand(e parser.Expr) string {
	first := unparen(e)
	for {
		b, ok := first.(*parser.BinaryExpr)
		if !ok || b.Op != parser.LAND && b.Op != parser.LUNLESS {
			break
		}
		first = unparen(b.LHS)
	}
	if first == unparen(e) {
		return ""
	}
	return first.String()
}

// without is the plan's expression with only the alternatives in kept
// (a bit per alternative), at least one.
func (p *chainPlan) without(kept uint64) string {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	if q, ok := p.queries[kept]; ok {
		return q
	}
	next := 0
	e := p.pruned(p.root, kept, &next)
	for i := len(p.wrappers) - 1; i >= 0; i-- {
		c := *p.wrappers[i]
		c.Args = append(parser.Expressions{e}, c.Args[1:]...)
		e = &c
	}
	q := e.String()
	p.queries[kept] = q
	return q
}

// pruned is e without the alternatives not in kept, nil when none is
// left; next numbers the alternatives as alternativesOf does. The plan's
// tree is not changed: an `or` with both sides left is copied, inside
// parentheses if it had them, since two `or` with different matching
// clauses do not regroup.
func (p *chainPlan) pruned(e parser.Expr, kept uint64, next *int) parser.Expr {
	b, ok := unparen(e).(*parser.BinaryExpr)
	if !ok || b.Op != parser.LOR {
		i := *next
		*next++
		if kept&(1<<i) == 0 {
			return nil
		}
		return e
	}
	lhs, rhs := p.pruned(b.LHS, kept, next), p.pruned(b.RHS, kept, next)
	switch {
	case lhs == nil:
		return rhs
	case rhs == nil:
		return lhs
	}
	c := *b
	c.LHS, c.RHS = lhs, rhs
	if _, ok := e.(*parser.ParenExpr); ok {
		return &parser.ParenExpr{Expr: &c}
	}
	return &c
}

// unparen strips the parentheses around e.
func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}
