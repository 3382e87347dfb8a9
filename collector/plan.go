package collector

import (
	"context"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/rules"

	"github.com/optiinfra/perfagent/signals"
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
	// groupBySource asks for a shared argument that aggregates by model
	// over a rename, agg by (…, model, …) (label_replace(X, "model", "$1",
	// S, "(.*)")), as agg by (…, S, …) (X), and names S model in the
	// answer (see groupBySource).
	groupBySource bool
	// nativeHistograms, when not nil, asks the source at the start of
	// each collection whether it holds any of the profiles' histograms as
	// native histograms, and then sends the queries that read histograms
	// in their native form, with the classic form beside it
	// (remote_native.go). It keeps the source's rewritten queries.
	nativeHistograms *nativeOrClassicQueries
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
	// rename is the label of shared's answer that the argument as
	// written calls model, when the plan grouped by it (groupBySource).
	rename string
}

// planSteps orders the rules of a profile into steps as plan says. The
// first rule (the profile's instances) is always a step of its own,
// because it gates the others. With sharedQuantiles, histogram_quantile
// rules of a constant φ over the same argument form one step, placed at
// the first of them.
func planSteps(rs []*rules.RecordingRule, plan queryPlan) []step {
	steps := make([]step, 0, len(rs))
	byArg := map[string]int{} // shared argument → its step
	for j, r := range rs {
		if !plan.sharedQuantiles || j == 0 {
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
		if steps[k].shared == "" || !plan.groupBySource {
			continue
		}
		// A fresh copy: the rewrite works in place, and the rules' own
		// expressions must stay as written.
		arg, err := NewParser().ParseExpr(steps[k].shared)
		if err != nil {
			continue
		}
		if src, ok := groupBySource(arg); ok {
			steps[k].shared, steps[k].rename = arg.String(), src
		}
	}
	return steps
}

// groupBySource rewrites, in place, an aggregation by model of a single
// rename, agg by (…, model, …) (label_replace(X, "model", "$1", S,
// "(.*)")), into agg by (…, S, …) (X), and returns S; also the two sides
// of an `or on (…, model, …)` that both have that form with one S. The
// rewritten expression selects the same series and groups them the same
// way: label_replace sets model to S's value, and drops it when S is empty
// or missing, so the groups by model are the groups by S. Its answer,
// with S named model (asModel), is the answer as written, bit for bit.
// What it saves the source is the rename: label_replace copies the labels
// of every series it reads (every bucket of a histogram across the fleet)
// before the aggregation throws most of them away.
//
// A chain of renames is left as written: grouping by all of its sources
// would split series that the chain gives one model.
func groupBySource(e parser.Expr) (string, bool) {
	switch n := e.(type) {
	case *parser.ParenExpr:
		return groupBySource(n.Expr)
	case *parser.BinaryExpr:
		vm := n.VectorMatching
		if n.Op != parser.LOR || vm == nil || !vm.On || !slices.Contains(vm.MatchingLabels, signals.LabelModel) {
			return "", false
		}
		// Both sides are checked before either is rewritten.
		l, lok := aggregationOfRename(n.LHS)
		r, rok := aggregationOfRename(n.RHS)
		if !lok || !rok || l.source != r.source || slices.Contains(vm.MatchingLabels, l.source) {
			return "", false
		}
		l.rewrite()
		r.rewrite()
		vm.MatchingLabels = replaced(vm.MatchingLabels, signals.LabelModel, l.source)
		return l.source, true
	}
	a, ok := aggregationOfRename(e)
	if !ok {
		return "", false
	}
	a.rewrite()
	return a.source, true
}

// renamedAggregation is an aggregation that groupBySource can rewrite.
type renamedAggregation struct {
	agg    *parser.AggregateExpr
	arg    parser.Expr // X, inside the rename
	source string
}

// aggregationOfRename reports whether e is agg by (…, model, …)
// (label_replace(X, "model", "$1", S, "(.*)")) and finds its parts. The
// aggregation takes no parameter and S is not among its groups.
func aggregationOfRename(e parser.Expr) (renamedAggregation, bool) {
	agg, ok := unparenthesized(e).(*parser.AggregateExpr)
	if !ok || agg.Without || agg.Param != nil || !slices.Contains(agg.Grouping, signals.LabelModel) {
		return renamedAggregation{}, false
	}
	switch agg.Op {
	case parser.SUM, parser.AVG, parser.MIN, parser.MAX, parser.COUNT, parser.GROUP:
	default:
		return renamedAggregation{}, false
	}
	x, steps, ok := renameOf(unparenthesized(agg.Expr))
	if !ok || len(steps) != 1 || steps[0].regex != "(.*)" || steps[0].source == signals.LabelModel || slices.Contains(agg.Grouping, steps[0].source) {
		return renamedAggregation{}, false
	}
	return renamedAggregation{agg: agg, arg: x, source: steps[0].source}, true
}

func (a renamedAggregation) rewrite() {
	a.agg.Grouping = replaced(a.agg.Grouping, signals.LabelModel, a.source)
	a.agg.Expr = a.arg
}

// replaced is names with old replaced by new.
func replaced(names []string, old, new string) []string {
	out := slices.Clone(names)
	for i, n := range out {
		if n == old {
			out[i] = new
		}
	}
	return out
}

// asModel names label source of every sample of v model, in place: the
// answer of an argument groupBySource rewrote, as the argument as written
// answers. A sample without source has no model either way.
func asModel(v promql.Vector, source string) promql.Vector {
	b := labels.NewBuilder(labels.EmptyLabels())
	for i := range v {
		v[i].Metric = renamedLabel(b, v[i].Metric, source)
	}
	return v
}

// matrixAsModel is asModel for a range query's answer.
func matrixAsModel(m promql.Matrix, source string) promql.Matrix {
	b := labels.NewBuilder(labels.EmptyLabels())
	for i := range m {
		m[i].Metric = renamedLabel(b, m[i].Metric, source)
	}
	return m
}

// renamedLabel is ls with label source named model.
func renamedLabel(b *labels.Builder, ls labels.Labels, source string) labels.Labels {
	v := ls.Get(source)
	if v == "" {
		return ls
	}
	b.Reset(ls)
	return b.Del(source).Set(signals.LabelModel, v).Labels()
}

// quantileOf returns φ and the argument of an expression of the form
// histogram_quantile(<number>, <argument>).
func quantileOf(e parser.Expr) (float64, string, bool) {
	call, ok := unparenthesized(e).(*parser.Call)
	if !ok || call.Func.Name != "histogram_quantile" || len(call.Args) != 2 {
		return 0, "", false
	}
	n, ok := call.Args[0].(*parser.NumberLiteral)
	if !ok {
		return 0, "", false
	}
	return n.Val, call.Args[1].String(), true
}

// unparenthesized is e without the parentheses around it.
func unparenthesized(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// histogramQuantile is histogram_quantile(q, in), as Prometheus's engine
// computes it. A native histogram's quantile comes from
// promql.HistogramQuantile. Classic histograms' float samples are grouped
// by their labels other than le, a sample whose le is not a number is left
// out, and each group's quantile comes from promql.BucketQuantile. The
// result carries each histogram's labels without le and the metric name.
// Where a native and a classic histogram have the same labels (a source
// asked for both, remote_native.go), the native one's quantile is kept.
func histogramQuantile(q float64, in promql.Vector) promql.Vector {
	type group struct {
		metric  labels.Labels
		buckets promql.Buckets
	}
	var (
		groups  = map[string]*group{}
		order   []*group
		buf     []byte
		natives int
	)
	for _, s := range in {
		if s.H != nil {
			natives++
		}
	}
	out := make(promql.Vector, 0, natives)
	for _, s := range in {
		if s.H != nil {
			v, _ := promql.HistogramQuantile(q, s.H, "", posrange.PositionRange{})
			out = append(out, promql.Sample{Metric: s.Metric.DropReserved(isMetricName), T: s.T, F: v})
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
	if len(order) == 0 {
		return out
	}
	native := make(map[uint64]bool, len(out))
	for _, s := range out {
		native[s.Metric.Hash()] = true
	}
	for _, g := range order {
		if native[g.metric.Hash()] {
			continue
		}
		v, _, _, _, _, _ := promql.BucketQuantile(q, g.buckets)
		out = append(out, promql.Sample{Metric: g.metric, T: in[0].T, F: v})
	}
	return out
}

func isMetricName(name string) bool { return name == model.MetricNameLabel }

// answered is a rules.QueryFunc that returns v, for a rule whose result
// the collector has already computed.
func answered(v promql.Vector) rules.QueryFunc {
	return func(context.Context, string, time.Time) (promql.Vector, error) { return v, nil }
}
