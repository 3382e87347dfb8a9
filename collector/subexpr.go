package collector

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/optiinfra/perfagent/internal/once"
)

// sharedSubexpressions are the subexpressions that the queries of one
// evaluation compute more than once, each given a name its result is
// read by. The profiles repeat whole terms: vLLM's frontend gap in
// seconds and as a fraction both subtract the mean queue and inference
// times from the mean end-to-end latency, the fraction divides by that
// mean once more; and several rates are a signal of their own and a
// term of another. Each such term is computed once, and the queries that
// repeat it read its result.
//
// Only subexpressions that read a range of samples are shared: they are
// what a query costs. Nothing inside a subquery is, because a subquery
// evaluates it at other times than the query's; nor the arguments of a
// few functions (unsharedArguments).
type sharedSubexpressions struct {
	// counts is how many times the queries compute each shareable
	// subexpression, by its PromQL.
	counts map[string]int
	// names are the names the results are read by: one per shareable
	// subexpression computed more than once.
	names map[string]string

	mtx      sync.Mutex
	rewrites map[string]*sharingQuery
}

// sharingQuery is a query in the form that reads the shared results: its
// expression, and the subexpressions whose results it reads.
type sharingQuery struct {
	expr string
	// reads are the subexpressions replaced, by the names their results
	// are read by.
	reads map[string]string
}

// sharedPrefix begins the names the shared results are read by: a name
// no scraped metric has, as Prometheus reserves names beginning with two
// underscores.
const sharedPrefix = "__perfagent_shared_"

// newSharedSubexpressions counts the shareable subexpressions of queries.
// A query that does not parse shares nothing, and fails when it is sent.
func newSharedSubexpressions(queries []string) *sharedSubexpressions {
	s := &sharedSubexpressions{counts: map[string]int{}, names: map[string]string{}, rewrites: map[string]*sharingQuery{}}
	for _, q := range queries {
		e, err := NewParser().ParseExpr(q)
		if err != nil {
			continue
		}
		var count func(parser.Node)
		count = func(n parser.Node) {
			if e, ok := n.(parser.Expr); ok && shareable(e) {
				key := e.String()
				s.counts[key]++
				if s.counts[key] == 2 {
					s.names[key] = fmt.Sprintf("%s%d", sharedPrefix, len(s.names))
				}
			}
			for _, c := range shareableChildren(n) {
				count(c)
			}
		}
		count(e)
	}
	return s
}

// shareable reports whether e's result may be computed apart and read in
// its place: an instant vector computed from a range of samples.
func shareable(e parser.Expr) bool {
	switch e.(type) {
	case *parser.VectorSelector, *parser.ParenExpr, *parser.StepInvariantExpr:
		return false
	}
	if e.Type() != parser.ValueTypeVector {
		return false
	}
	reads := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n.(type) {
		case *parser.MatrixSelector, *parser.SubqueryExpr:
			reads = true
		}
		return nil
	})
	return reads
}

// unsharedArguments are the functions whose arguments are not shared,
// nor anything inside them. absent, absent_over_time, timestamp and info
// answer from their argument's form (its selector's matchers, its
// samples' own timestamps), not only its value. Under histogram_count,
// histogram_sum and histogram_avg the engine decodes only the count and
// sum of each histogram; their argument computed apart would compute
// every bucket.
var unsharedArguments = map[string]bool{
	"absent": true, "absent_over_time": true, "timestamp": true, "info": true,
	"histogram_count": true, "histogram_sum": true, "histogram_avg": true,
}

// shareableChildren are the children of n whose subexpressions may be
// shared: none inside a subquery, nor the arguments of
// unsharedArguments.
func shareableChildren(n parser.Node) []parser.Node {
	switch n := n.(type) {
	case *parser.SubqueryExpr:
		return nil
	case *parser.Call:
		if unsharedArguments[n.Func.Name] {
			return nil
		}
	}
	return parser.Children(n)
}

// rewrite returns q with each shared subexpression that the rest of the
// queries compute too replaced by a selector of its result's name. q's
// own expression is never replaced: it is what the caller computes.
func (s *sharedSubexpressions) rewrite(q string) *sharingQuery {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	if r, ok := s.rewrites[q]; ok {
		return r
	}
	r := &sharingQuery{expr: q}
	if len(s.rewrites) >= maxCachedQueries {
		clear(s.rewrites)
	}
	s.rewrites[q] = r
	e, err := NewParser().ParseExpr(q)
	if err != nil || len(s.names) == 0 {
		return r
	}
	// A subexpression is read from its result where it is computed more
	// often than q is: the ones computed only inside q's occurrences are
	// computed once with q.
	own := max(s.counts[e.String()], 1)
	var replace func(parser.Node)
	replace = func(n parser.Node) {
		for _, c := range shareableChildren(n) {
			if ce, ok := c.(parser.Expr); ok {
				key := ce.String()
				if name, ok := s.names[key]; ok && s.counts[key] > own {
					setChild(n, ce, resultSelector(name))
					if r.reads == nil {
						r.reads = map[string]string{}
					}
					r.reads[key] = name
					continue
				}
			}
			replace(c)
		}
	}
	replace(e)
	if r.reads != nil {
		r.expr = e.String()
	}
	return r
}

// resultSelector reads the result named name.
func resultSelector(name string) *parser.VectorSelector {
	return &parser.VectorSelector{Name: name, LabelMatchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name)}}
}

// setChild replaces n's child old by new.
func setChild(n parser.Node, old, new parser.Expr) {
	switch n := n.(type) {
	case *parser.AggregateExpr:
		if n.Expr == old {
			n.Expr = new
		}
		if n.Param == old {
			n.Param = new
		}
	case *parser.BinaryExpr:
		if n.LHS == old {
			n.LHS = new
		}
		if n.RHS == old {
			n.RHS = new
		}
	case *parser.Call:
		for i, a := range n.Args {
			if a == old {
				n.Args[i] = new
			}
		}
	case *parser.ParenExpr:
		n.Expr = new
	case *parser.UnaryExpr:
		n.Expr = new
	}
}

// sharedResults computes the shared subexpressions of one evaluation's
// queries, each once, with eval and evalReading, which evaluates a query
// that reads computed results.
type sharedResults struct {
	plan        *sharedSubexpressions
	eval        func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error)
	evalReading func(ctx context.Context, expr string, ts time.Time, computed map[string]promql.Vector) (promql.Vector, error)
	results     once.Map[resultKey, promql.Vector]
}

type resultKey struct {
	expr string
	ts   int64
}

// query evaluates expr at ts, reading the results of its shared
// subexpressions, which it computes first if no query has. A query that
// other queries repeat is such a result itself; the caller gets a copy,
// which it may change.
func (r *sharedResults) query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	if _, ok := r.plan.names[expr]; ok {
		v, err := r.result(ctx, expr, ts)
		return slices.Clone(v), err
	}
	return r.compute(ctx, expr, ts)
}

// compute evaluates expr at ts, reading the results of its shared
// subexpressions.
func (r *sharedResults) compute(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	q := r.plan.rewrite(expr)
	if len(q.reads) == 0 {
		return r.eval(ctx, expr, ts)
	}
	computed := make(map[string]promql.Vector, len(q.reads))
	for sub, name := range q.reads {
		v, err := r.result(ctx, sub, ts)
		if err != nil {
			return nil, err
		}
		computed[name] = v
	}
	return r.evalReading(ctx, q.expr, ts, computed)
}

// result returns the result of the subexpression sub at ts, computed by
// the first query that reads it.
func (r *sharedResults) result(ctx context.Context, sub string, ts time.Time) (promql.Vector, error) {
	return r.results.Get(resultKey{expr: sub, ts: ts.UnixMilli()}, func() (promql.Vector, error) {
		return r.compute(ctx, sub, ts)
	})
}
