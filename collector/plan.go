package collector

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/rules"
)

// queryPlan says how a cycle puts the profile rules to its source. The
// zero plan sends every rule's expression as it is, the rules of one
// profile in order and the profiles concurrently.
type queryPlan struct {
	// sharedQuantiles fetches the argument of histogram_quantile once for
	// all the rules of a profile that take quantiles of the same
	// expression (the 0.5, 0.95 and 0.99 rules of one histogram) and
	// computes the quantiles in the agent. The argument is what costs the
	// source: it reads every bucket series of the fleet over the rate
	// window; the quantile over its result is cheap.
	sharedQuantiles bool
	// concurrency bounds the queries of one collection in flight, across
	// profiles, when positive. The rules of a profile other than its
	// first (the instances) then run concurrently as well.
	concurrency int
}

// planner is a Source that asks for a query plan other than the zero one.
type planner interface {
	queryPlan() queryPlan
}

// planOf returns the plan src asks for.
func planOf(src Source) queryPlan {
	if p, ok := src.(planner); ok {
		return p.queryPlan()
	}
	return queryPlan{}
}

// step is one query of a cycle and the rules it answers: a rule's own
// expression, or the argument that several histogram_quantile rules share
// (then quantiles holds each rule's φ).
type step struct {
	rules     []int // indices into the profile's rules
	shared    string
	quantiles []float64
}

// planSteps orders the rules of a profile into steps. The first rule
// (the profile's instances) is always a step of its own, because it gates
// the others. With shared, histogram_quantile rules of a constant φ over
// the same argument form one step, placed at the first of them.
func planSteps(rs []*rules.RecordingRule, shared bool) []step {
	steps := make([]step, 0, len(rs))
	byArg := map[string]int{} // shared argument → its step
	for j, r := range rs {
		if !shared || j == 0 {
			steps = append(steps, step{rules: []int{j}})
			continue
		}
		q, arg, ok := quantileOf(r.Query())
		if !ok {
			steps = append(steps, step{rules: []int{j}})
			continue
		}
		if k, seen := byArg[arg]; seen {
			steps[k].rules = append(steps[k].rules, j)
			steps[k].quantiles = append(steps[k].quantiles, q)
			continue
		}
		byArg[arg] = len(steps)
		steps = append(steps, step{rules: []int{j}, shared: arg, quantiles: []float64{q}})
	}
	// A quantile that shares its argument with no other rule is cheaper
	// asked as written: the source returns one sample per histogram, not
	// one per bucket.
	for k := range steps {
		if steps[k].shared != "" && len(steps[k].rules) == 1 {
			steps[k].shared, steps[k].quantiles = "", nil
		}
	}
	return steps
}

// quantileOf returns φ and the argument of an expression of the form
// histogram_quantile(<number>, <argument>).
func quantileOf(e parser.Expr) (float64, string, bool) {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	call, ok := e.(*parser.Call)
	if !ok || call.Func.Name != "histogram_quantile" || len(call.Args) != 2 {
		return 0, "", false
	}
	n, ok := call.Args[0].(*parser.NumberLiteral)
	if !ok {
		return 0, "", false
	}
	return n.Val, call.Args[1].String(), true
}

// histogramQuantile is histogram_quantile(q, in), as Prometheus's engine
// computes it. A native histogram's quantile comes from
// promql.HistogramQuantile. Classic histograms' float samples are grouped
// by their labels other than le, a sample whose le is not a number is left
// out, and each group's quantile comes from promql.BucketQuantile. The
// result carries each histogram's labels without le and the metric name.
func histogramQuantile(q float64, in promql.Vector) promql.Vector {
	type group struct {
		metric  labels.Labels
		buckets promql.Buckets
	}
	var (
		groups = map[string]*group{}
		order  []*group
		buf    []byte
		out    promql.Vector
	)
	for _, s := range in {
		if s.H != nil {
			v, _ := promql.HistogramQuantile(q, s.H, "", posrange.PositionRange{})
			out = append(out, promql.Sample{Metric: labels.NewBuilder(s.Metric).Del(model.MetricNameLabel).Labels(), T: s.T, F: v})
			continue
		}
		upper, err := strconv.ParseFloat(s.Metric.Get(labels.BucketLabel), 64)
		if err != nil || math.IsNaN(upper) {
			continue
		}
		buf = s.Metric.BytesWithoutLabels(buf, labels.BucketLabel)
		g, ok := groups[string(buf)]
		if !ok {
			g = &group{metric: labels.NewBuilder(s.Metric).Del(model.MetricNameLabel, labels.BucketLabel).Labels()}
			groups[string(buf)] = g
			order = append(order, g)
		}
		g.buckets = append(g.buckets, promql.Bucket{UpperBound: upper, Count: s.F})
	}
	for _, g := range order {
		v, _, _, _, _, _ := promql.BucketQuantile(q, g.buckets)
		out = append(out, promql.Sample{Metric: g.metric, T: in[0].T, F: v})
	}
	return out
}

// answered is a rules.QueryFunc that returns v, for a rule whose result
// the collector has already computed.
func answered(v promql.Vector) rules.QueryFunc {
	return func(context.Context, string, time.Time) (promql.Vector, error) { return v, nil }
}
