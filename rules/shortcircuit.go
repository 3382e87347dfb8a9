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

// shortCircuit wraps qf so that an expression of the form
// `A and B …`, `A unless B …` (any chain of the two, with or without
// matching clauses) is answered empty without evaluating the rest when
// its leftmost operand A is empty: both operators keep only series of
// their left side. The engine evaluates every operand whatever the left
// side holds, and the bottleneck rules are written as a selective
// condition (a KV cache over 90 %, five requests waiting) followed by
// the conditions that tell one bottleneck from another, each over the
// whole fleet. In a fleet without the bottleneck the first is empty, and
// the rest was most of the rule's cost.
//
// When A is not empty the whole expression is evaluated as written, A
// again with it, so the answer is always the engine's. What waits until
// A has series are the errors and warnings that only evaluating the rest
// would raise (a many-to-many match); the text was checked at load.
func shortCircuit(qf promrules.QueryFunc) promrules.QueryFunc {
	var (
		mtx sync.Mutex
		// leftmost holds the leftmost operand of the expressions that
		// mention `and` or `unless`, "" for those that are no chain:
		// the rules' expressions, a few dozen. Other queries (the
		// evidence's selectors, one per active bottleneck) are not
		// parsed here, and a caller asking ever new chains is answered
		// without the map growing past maxChains.
		leftmost = map[string]string{}
	)
	return func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
		if !mayChain(q) {
			return qf(ctx, q, t)
		}
		mtx.Lock()
		first, ok := leftmost[q]
		mtx.Unlock()
		if !ok {
			first = leftmostOperand(q)
			mtx.Lock()
			if len(leftmost) < maxChains {
				leftmost[q] = first
			}
			mtx.Unlock()
		}
		if first == "" {
			return qf(ctx, q, t)
		}
		v, err := qf(ctx, first, t)
		if err != nil || len(v) > 0 {
			return qf(ctx, q, t)
		}
		return promql.Vector{}, nil
	}
}

// maxChains bounds the expressions shortCircuit keeps parsed.
const maxChains = 1024

// mayChain reports whether q has the word of an `and` or `unless`
// anywhere (in any case, as PromQL's keywords).
func mayChain(q string) bool {
	q = strings.ToLower(q)
	return strings.Contains(q, "and") || strings.Contains(q, "unless")
}

// leftmostOperand is the leftmost operand of q when q is a chain of `and`
// and `unless` operations (inside label_replace or label_join calls), ""
// otherwise, or when q does not parse (the engine says why).
func leftmostOperand(q string) string {
	e, err := newParser().ParseExpr(q)
	if err != nil {
		return ""
	}
	// The manager sets an alert's plain labels with label_replace
	// around the rule's expression (withLabels), which is empty when its
	// argument is.
	e = unparen(e)
	for {
		c, ok := e.(*parser.Call)
		if !ok || c.Func.Name != "label_replace" && c.Func.Name != "label_join" {
			break
		}
		e = unparen(c.Args[0])
	}
	first := e
	for {
		b, ok := first.(*parser.BinaryExpr)
		if !ok || b.Op != parser.LAND && b.Op != parser.LUNLESS {
			break
		}
		first = unparen(b.LHS)
	}
	if first == e {
		return ""
	}
	return first.String()
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
