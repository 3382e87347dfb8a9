package collector

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// The embedded scrape stores every classic histogram as one native
// histogram with custom buckets (Prometheus's convert_classic_histograms_to_nhcb):
// one series where the exposition has one per bucket plus _sum and _count.
// A vLLM server's latency histograms alone are over a hundred bucket
// series; converted they are six, which is most of what a fleet's raw
// samples cost in memory. The profiles are written for classic histograms,
// as a Prometheus holds them, so the embedded source rewrites each query
// to the same result over the native series:
//
//   - a selector of X_bucket reads X, and `le` leaves the groupings;
//   - rate, increase or irate of X_count (X_sum) becomes
//     histogram_count (histogram_sum) of the same function of X, or the
//     original when X is no histogram (tgi_request_count is a counter);
//   - resets and changes of X_count or X_sum count those of X, or of the
//     original, the same way; a bare X_count (X_sum) reads
//     histogram_count(X) (histogram_sum(X)) or the original.
//
// Any other use of a histogram's series (a matcher on `le`, a regular
// expression on the metric name of a _bucket series, another function of
// X_count) cannot be rewritten; then the scrape keeps classic histograms.

// errClassicOnly says why a query must read classic histograms.
var errClassicOnly = errors.New("reads classic histogram series in a way the native histograms cannot answer")

// histogramSuffixes are the series names a classic histogram adds to its
// family's name.
var histogramSuffixes = []string{"_bucket", "_count", "_sum"}

// splitHistogramName returns a series name's family and histogram suffix,
// or the name and "" when it has none.
func splitHistogramName(name string) (family, suffix string) {
	for _, s := range histogramSuffixes {
		if f, ok := strings.CutSuffix(name, s); ok && f != "" {
			return f, s
		}
	}
	return name, ""
}

// toNativeHistograms rewrites e in place, as described above.
func toNativeHistograms(e parser.Expr) (parser.Expr, error) {
	r := &nativeRewrite{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if _, suffix := splitHistogramName(vs.Name); suffix == "_bucket" {
				r.buckets = true
			}
		}
		return nil
	})
	return r.expr(e)
}

type nativeRewrite struct {
	// buckets is whether the query reads bucket series, whose `le` label
	// the native histograms do not have.
	buckets bool
}

func (r *nativeRewrite) expr(e parser.Expr) (parser.Expr, error) {
	var err error
	switch n := e.(type) {
	case *parser.Call:
		if alt, ok, err := r.call(n); ok || err != nil {
			return alt, err
		}
		for i, a := range n.Args {
			if n.Args[i], err = r.expr(a); err != nil {
				return nil, err
			}
		}
	case *parser.MatrixSelector:
		vs, _ := n.VectorSelector.(*parser.VectorSelector)
		if vs == nil {
			return n, nil
		}
		if _, suffix := splitHistogramName(vs.Name); suffix != "" && suffix != "_bucket" {
			return nil, fmt.Errorf("%s: a range of %s outside rate, increase, irate, resets or changes %w", e, vs.Name, errClassicOnly)
		}
		return n, r.bucketSelector(vs)
	case *parser.VectorSelector:
		family, suffix := splitHistogramName(n.Name)
		switch suffix {
		case "_bucket":
			return n, r.bucketSelector(n)
		case "_count", "_sum":
			native, err := renamed(n, family)
			if err != nil {
				return nil, err
			}
			return orOriginal(call(histogramFunc(suffix), native), n), nil
		}
		if err := checkNameMatchers(n); err != nil {
			return nil, err
		}
	case *parser.AggregateExpr:
		if r.buckets && !n.Without {
			n.Grouping = slices.DeleteFunc(n.Grouping, isLe)
		}
		if n.Param != nil {
			if n.Param, err = r.expr(n.Param); err != nil {
				return nil, err
			}
		}
		n.Expr, err = r.expr(n.Expr)
	case *parser.BinaryExpr:
		if r.buckets && n.VectorMatching != nil && n.VectorMatching.On {
			n.VectorMatching.MatchingLabels = slices.DeleteFunc(n.VectorMatching.MatchingLabels, isLe)
		}
		if n.LHS, err = r.expr(n.LHS); err != nil {
			return nil, err
		}
		n.RHS, err = r.expr(n.RHS)
	case *parser.ParenExpr:
		n.Expr, err = r.expr(n.Expr)
	case *parser.UnaryExpr:
		n.Expr, err = r.expr(n.Expr)
	case *parser.SubqueryExpr:
		n.Expr, err = r.expr(n.Expr)
	case *parser.StepInvariantExpr:
		n.Expr, err = r.expr(n.Expr)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// call rewrites a function of a range of X_count or X_sum; ok is false for
// any other call.
func (r *nativeRewrite) call(c *parser.Call) (parser.Expr, bool, error) {
	if len(c.Args) != 1 {
		return nil, false, nil
	}
	ms, _ := c.Args[0].(*parser.MatrixSelector)
	if ms == nil {
		return nil, false, nil
	}
	vs, _ := ms.VectorSelector.(*parser.VectorSelector)
	if vs == nil {
		return nil, false, nil
	}
	family, suffix := splitHistogramName(vs.Name)
	if suffix != "_count" && suffix != "_sum" {
		return nil, false, nil
	}
	native, err := renamed(vs, family)
	if err != nil {
		return nil, true, err
	}
	nativeCall := call(c.Func.Name, &parser.MatrixSelector{VectorSelector: native, Range: ms.Range})
	switch c.Func.Name {
	case "rate", "increase", "irate":
		return orOriginal(call(histogramFunc(suffix), nativeCall), c), true, nil
	case "resets", "changes":
		return orOriginal(nativeCall, c), true, nil
	}
	return nil, true, fmt.Errorf("%s: %s of %s %w", c, c.Func.Name, vs.Name, errClassicOnly)
}

// bucketSelector renames a selector of X_bucket to X.
func (r *nativeRewrite) bucketSelector(vs *parser.VectorSelector) error {
	if err := checkNameMatchers(vs); err != nil {
		return err
	}
	family, suffix := splitHistogramName(vs.Name)
	if suffix != "_bucket" {
		return nil
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.BucketLabel {
			return fmt.Errorf("%s: a matcher on le %w", vs, errClassicOnly)
		}
	}
	native, err := renamed(vs, family)
	if err != nil {
		return err
	}
	*vs = *native
	return nil
}

// checkNameMatchers refuses a selector that picks histogram series by a
// regular expression on the metric name: which names it means is not
// known before the scrape.
func checkNameMatchers(vs *parser.VectorSelector) error {
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel || m.Type == labels.MatchEqual {
			continue
		}
		for _, s := range histogramSuffixes {
			if strings.Contains(m.Value, s[1:]) {
				return fmt.Errorf("%s: a regular expression on the name of histogram series %w", vs, errClassicOnly)
			}
		}
	}
	return nil
}

// renamed is a copy of vs that reads the metric name.
func renamed(vs *parser.VectorSelector, name string) (*parser.VectorSelector, error) {
	ms := make([]*labels.Matcher, 0, len(vs.LabelMatchers))
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel {
			ms = append(ms, m)
		}
	}
	nm, err := labels.NewMatcher(labels.MatchEqual, model.MetricNameLabel, name)
	if err != nil {
		return nil, fmt.Errorf("matching %s: %w", name, err)
	}
	cp := *vs
	cp.Name = name
	cp.LabelMatchers = append(ms, nm)
	return &cp, nil
}

func histogramFunc(suffix string) string {
	if suffix == "_sum" {
		return "histogram_sum"
	}
	return "histogram_count"
}

func call(name string, arg parser.Expr) *parser.Call {
	return &parser.Call{Func: parser.Functions[name], Args: parser.Expressions{arg}}
}

// orOriginal is (native or original): only one side has series, since a
// converted histogram has no classic series left and a family that is no
// histogram has no native one.
func orOriginal(native, original parser.Expr) parser.Expr {
	return &parser.ParenExpr{Expr: &parser.BinaryExpr{
		Op:             parser.LOR,
		LHS:            native,
		RHS:            original,
		VectorMatching: &parser.VectorMatching{Card: parser.CardManyToMany},
	}}
}

func isLe(name string) bool { return name == model.BucketLabel }

// nativeQueries rewrites the queries the embedded source receives for
// native histograms.
type nativeQueries struct{ rewriteCache }

// rewrite returns the native form of expr, or expr itself when it does
// not parse or cannot be rewritten: the store then answers (or reports)
// as it would have.
func (q *nativeQueries) rewrite(expr string) string {
	return q.get(expr, toNativeHistograms)
}

// rewriteCache remembers the rewritten form of each query it was given:
// the profiles send the same few dozen every cycle.
type rewriteCache struct {
	mtx   sync.Mutex
	cache map[string]string
}

// maxCachedQueries bounds the cache, against callers that vary their
// queries (one instance's filter, a window of their own).
const maxCachedQueries = 4096

// get returns expr rewritten by f, or expr itself when it does not parse
// or f refuses it.
func (c *rewriteCache) get(expr string, f func(parser.Expr) (parser.Expr, error)) string {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	if out, ok := c.cache[expr]; ok {
		return out
	}
	out := expr
	if e, err := NewParser().ParseExpr(expr); err == nil {
		if n, err := f(e); err == nil {
			out = n.String()
		}
	}
	if len(c.cache) >= maxCachedQueries {
		clear(c.cache)
	}
	if c.cache == nil {
		c.cache = map[string]string{}
	}
	c.cache[expr] = out
	return out
}
