package instantql

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/schema"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/kahansum"
)

// Eval evaluates the query at ts over what from reads, as the engine's
// instant query would, in no particular order.
func (q *Query) Eval(ctx context.Context, from storage.Queryable, ts time.Time) (promql.Vector, error) {
	mint, maxt := promql.FindMinMaxTime(&parser.EvalStmt{Expr: q.expr, Start: ts, End: ts, LookbackDelta: q.lookback})
	querier, err := from.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	ev := &evaluator{ctx: ctx, querier: querier, ts: ts.UnixMilli(), lookback: q.lookback.Milliseconds()}
	v, err := q.root.eval(ev)
	if cerr := querier.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	out := make(promql.Vector, len(v))
	for i, s := range v {
		out[i] = promql.Sample{Metric: s.ls, T: ev.ts, F: s.f, H: s.h}
	}
	return out, nil
}

// sample is one element of an instant vector: a float, or a histogram h.
type sample struct {
	ls labels.Labels
	f  float64
	h  *histogram.FloatHistogram
}

// vector is an instant vector. A node that computes its output from an
// input's samples writes the output into the input's storage: the
// vectors of a fleet are thousands of samples long.
type vector []sample

// add appends s to v, doubling v's storage when it is full: append
// grows a long slice by about a third at a time, copying the vector of
// a fleet's series several times over.
func (v vector) add(s sample) vector {
	if len(v) == cap(v) {
		grown := make(vector, len(v), max(16, 2*cap(v)))
		copy(grown, v)
		v = grown
	}
	return append(v, s)
}

type node interface {
	eval(ev *evaluator) (vector, error)
}

type evaluator struct {
	ctx      context.Context
	querier  storage.Querier
	ts       int64
	lookback int64
	it       chunkenc.Iterator
	buf      []byte
	lb       labels.Builder
}

// selectorNode is an instant vector selector: each series' latest
// sample within the lookback before the evaluation time less the
// offset, unless that is a staleness marker.
type selectorNode struct {
	vs     *parser.VectorSelector
	offset int64
}

func (n *selectorNode) eval(ev *evaluator) (vector, error) {
	ref := ev.ts - n.offset
	hints := &storage.SelectHints{Start: ref - ev.lookback + 1, End: ref}
	set := ev.querier.Select(ev.ctx, false, hints, n.vs.LabelMatchers...)
	var out vector
	mi := storage.NewMemoizedEmptyIterator(ev.lookback)
	for set.Next() {
		s := set.At()
		ev.it = s.Iterator(ev.it)
		mi.Reset(ev.it)
		var (
			t int64
			f float64
			h *histogram.FloatHistogram
		)
		// As the engine's vectorSelectorSingle.
		vt := mi.Seek(ref)
		switch vt {
		case chunkenc.ValNone:
			if err := mi.Err(); err != nil {
				return nil, err
			}
		case chunkenc.ValFloat:
			t, f = mi.At()
		case chunkenc.ValFloatHistogram:
			t, h = mi.AtFloatHistogram()
		default:
			return nil, unsupported("a sample of type %s", vt)
		}
		if vt == chunkenc.ValNone || t > ref {
			var ok bool
			_, t, f, h, ok = mi.PeekPrev()
			if !ok || t <= ref-ev.lookback {
				continue
			}
		}
		if value.IsStaleNaN(f) || h != nil && value.IsStaleNaN(h.Sum) {
			continue
		}
		out = out.add(sample{ls: s.Labels(), f: f, h: h})
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// rangeFuncNode is a function of a range selector, (end - range, end]
// with end the evaluation time less the offset: rate, increase or
// resets, deriv or predict_linear, or one of overTimeFuncs.
type rangeFuncNode struct {
	fn       string
	vs       *parser.VectorSelector
	rng      time.Duration
	offset   int64
	param    float64
	keepName bool
}

func (n *rangeFuncNode) eval(ev *evaluator) (vector, error) {
	rng := n.rng.Milliseconds()
	end := ev.ts - n.offset
	mint := end - rng
	hints := &storage.SelectHints{Start: mint + 1, End: end, Range: rng}
	set := ev.querier.Select(ev.ctx, false, hints, n.vs.LabelMatchers...)
	var (
		out    vector
		floats []promql.FPoint
		hists  []promql.HPoint
	)
	for set.Next() {
		s := set.At()
		ev.it = s.Iterator(ev.it)
		floats, hists = floats[:0], hists[:0]
	samples:
		for vt := ev.it.Next(); vt != chunkenc.ValNone; vt = ev.it.Next() {
			t := ev.it.AtT()
			switch {
			case t > end:
				break samples
			case t <= mint:
				continue
			}
			switch vt {
			case chunkenc.ValFloat:
				_, f := ev.it.At()
				if !value.IsStaleNaN(f) {
					floats = append(floats, promql.FPoint{T: t, F: f})
				}
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				// The histograms are read into those of the series
				// before: nothing computed from them keeps them.
				var h *histogram.FloatHistogram
				if n := len(hists); n < cap(hists) {
					h = hists[:n+1][n].H
				}
				_, h = ev.it.AtFloatHistogram(h)
				if !value.IsStaleNaN(h.Sum) {
					hists = append(hists, promql.HPoint{T: t, H: h})
				}
			}
		}
		if err := ev.it.Err(); err != nil {
			return nil, err
		}
		var (
			r   sample
			ok  bool
			err error
		)
		switch n.fn {
		case "resets":
			r.f, ok = resets(floats, hists)
		case "rate", "increase":
			r.f, r.h, ok, err = extrapolatedRate(floats, hists, mint, end, n.rng, n.fn == "rate")
		case "deriv", "predict_linear":
			if len(hists) > 0 {
				return nil, unsupported("%s of histograms", n.fn)
			}
			// A line needs two points. deriv's intercept time is near
			// the samples for accuracy; predict_linear's is the
			// evaluation time, from which it looks param seconds ahead.
			if ok = len(floats) >= 2; ok && n.fn == "deriv" {
				r.f, _ = linearRegression(floats, floats[0].T)
			} else if ok {
				slope, intercept := linearRegression(floats, ev.ts)
				r.f = slope*n.param + intercept
			}
		default:
			if len(hists) > 0 {
				return nil, unsupported("%s of histograms", n.fn)
			}
			if ok = len(floats) > 0; ok {
				r.f = overTimeFuncs[n.fn](floats, n.param)
			}
		}
		if err != nil {
			return nil, err
		}
		if ok {
			r.ls = s.Labels()
			if !n.keepName {
				r.ls = r.ls.DropReserved(schema.IsMetadataLabel)
			}
			out = out.add(r)
		}
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// vectorFuncNode is a function of one instant vector.
type vectorFuncNode struct {
	fn    string
	arg   node
	param float64
}

func (n *vectorFuncNode) eval(ev *evaluator) (vector, error) {
	in, err := n.arg.eval(ev)
	if err != nil {
		return nil, err
	}
	out := in[:0]
	for _, s := range in {
		switch {
		case n.fn == "clamp_min" && s.h == nil:
			s.f = math.Max(n.param, math.Min(math.Inf(1), s.f))
		case n.fn == "histogram_sum" && s.h != nil:
			s.f = s.h.Sum
		case n.fn == "histogram_count" && s.h != nil:
			s.f = s.h.Count
		case n.fn == "histogram_avg" && s.h != nil:
			s.f = s.h.Sum / s.h.Count
		case n.fn == "round" && s.h == nil:
			// The engine multiplies by the inverse, for fewer
			// rounding errors than a division.
			inverse := 1.0 / n.param
			s.f = math.Floor(s.f*inverse+0.5) / inverse
		default:
			continue
		}
		s.h = nil
		s.ls = s.ls.DropReserved(schema.IsMetadataLabel)
		out = append(out, s)
	}
	return out, nil
}

// labelReplaceNode is label_replace: where regex matches the value of
// src, dst takes the expansion of repl; an empty one deletes dst.
type labelReplaceNode struct {
	arg            node
	dst, repl, src string
	regex          *regexp.Regexp
}

func (n *labelReplaceNode) eval(ev *evaluator) (vector, error) {
	in, err := n.arg.eval(ev)
	if err != nil {
		return nil, err
	}
	var expanded []byte
	for i, s := range in {
		value := s.ls.Get(n.src)
		match := n.regex.FindStringSubmatchIndex(value)
		if match == nil {
			continue
		}
		expanded = n.regex.ExpandString(expanded[:0], n.repl, value, match)
		ev.lb.Reset(s.ls)
		ev.lb.Set(n.dst, string(expanded))
		in[i].ls = ev.lb.Labels()
	}
	// Two series made one are the engine's error; it tells them by
	// their hashes.
	if len(in) > 1 {
		hashes := make(map[uint64]struct{}, len(in))
		for _, s := range in {
			h := s.ls.Hash()
			if _, dup := hashes[h]; dup {
				return nil, unsupported("label_replace making two series one")
			}
			hashes[h] = struct{}{}
		}
	}
	return in, nil
}

// aggregateNode is sum, avg, min, max, count or group by labels.
type aggregateNode struct {
	op       parser.ItemType
	grouping []string
	arg      node
}

// aggregate is one group of an aggregation, as the engine keeps it.
type aggregate struct {
	ls                    labels.Labels
	seen                  bool
	f, kahanC, mean       float64
	count                 float64
	incrementalMean       bool
	h, histKahanC         *histogram.FloatHistogram
	hasFloat, hasHist     bool
	incompatibleHistogram bool
}

func (n *aggregateNode) eval(ev *evaluator) (vector, error) {
	in, err := n.arg.eval(ev)
	if err != nil {
		return nil, err
	}
	// The groups are counted first, and each sample's group noted, so
	// that they are made at once rather than grown.
	index := map[uint64]int{}
	groupOf := make([]int, len(in))
	var firsts []int
	for j, s := range in {
		var key uint64
		key, ev.buf = s.ls.HashForLabels(ev.buf, n.grouping...)
		i, ok := index[key]
		if !ok {
			i = len(index)
			index[key] = i
			firsts = append(firsts, j)
		}
		groupOf[j] = i
	}
	groups := make([]aggregate, len(firsts))
	for i, j := range firsts {
		ev.lb.Reset(in[j].ls)
		ev.lb.Keep(n.grouping...)
		groups[i].ls = ev.lb.Labels()
	}
	for j, s := range in {
		if err := n.add(&groups[groupOf[j]], s); err != nil {
			return nil, err
		}
	}
	// Every group has a sample of in: the results fit in its storage.
	out := in[:0]
	for i := range groups {
		if s, ok := n.result(&groups[i]); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// add adds s to g as the engine's aggregation does.
func (n *aggregateNode) add(g *aggregate, s sample) error {
	if s.h != nil && n.op == parser.AVG {
		// The engine's mean of histograms is left to it.
		return unsupported("%s over a histogram", n.op)
	}
	if !g.seen {
		g.seen, g.f, g.mean, g.count = true, s.f, s.f, 1
		switch n.op {
		case parser.SUM:
			if s.h == nil {
				g.hasFloat = true
			} else {
				g.h, g.hasHist = s.h.Copy(), true
			}
		case parser.AVG:
			g.hasFloat = true
		case parser.GROUP:
			g.f = 1
		case parser.MIN, parser.MAX:
			g.seen = s.h == nil
		}
		return nil
	}
	if g.incompatibleHistogram {
		return nil
	}
	switch n.op {
	case parser.SUM:
		if s.h == nil {
			g.hasFloat = true
			g.f, g.kahanC = kahansum.Inc(s.f, g.f, g.kahanC)
			return nil
		}
		g.hasHist = true
		if g.h == nil {
			// After a float: the engine gives the group no value.
			return nil
		}
		c, _, _, err := g.h.KahanAdd(s.h, g.histKahanC)
		if err != nil {
			return unsupported("adding histograms: %v", err)
		}
		g.histKahanC = c
	case parser.AVG:
		g.count++
		if !g.incrementalMean {
			newV, newC := kahansum.Inc(s.f, g.f, g.kahanC)
			if !math.IsInf(newV, 0) {
				g.f, g.kahanC = newV, newC
				return nil
			}
			g.incrementalMean = true
			g.mean = g.f / (g.count - 1)
			g.kahanC /= g.count - 1
		}
		q := (g.count - 1) / g.count
		g.mean, g.kahanC = kahansum.Inc(s.f/g.count, q*g.mean, q*g.kahanC)
	case parser.MAX:
		if s.h == nil && (g.f < s.f || math.IsNaN(g.f)) {
			g.f = s.f
		}
	case parser.MIN:
		if s.h == nil && (g.f > s.f || math.IsNaN(g.f)) {
			g.f = s.f
		}
	case parser.COUNT:
		g.count++
	}
	return nil
}

// result is g's value, and false where the engine gives none.
func (n *aggregateNode) result(g *aggregate) (sample, bool) {
	if !g.seen {
		return sample{}, false
	}
	switch n.op {
	case parser.SUM:
		switch {
		case g.hasFloat && g.hasHist, g.incompatibleHistogram:
			return sample{}, false
		case g.hasHist:
			if g.histKahanC != nil {
				g.h, _, _, _ = g.h.Add(g.histKahanC)
			}
			g.h.Compact(0)
			return sample{ls: g.ls, h: g.h}, true
		}
		g.f += g.kahanC
	case parser.AVG:
		if g.incrementalMean {
			g.f = g.mean + g.kahanC
		} else {
			g.f = g.f/g.count + g.kahanC/g.count
		}
	case parser.COUNT:
		g.f = g.count
	}
	return sample{ls: g.ls, f: g.f}, true
}

// scalar is a number literal or scalar() of a vector.
type scalar interface {
	value(ev *evaluator) (float64, error)
}

type numberScalar float64

func (n numberScalar) value(*evaluator) (float64, error) { return float64(n), nil }

// vectorScalar is scalar(v): the value of v's only float sample, NaN
// when it has none or several.
type vectorScalar struct{ arg node }

func (s *vectorScalar) value(ev *evaluator) (float64, error) {
	v, err := s.arg.eval(ev)
	if err != nil {
		return 0, err
	}
	found, f := false, math.NaN()
	for _, x := range v {
		if x.h != nil {
			continue
		}
		if found {
			return math.NaN(), nil
		}
		found, f = true, x.f
	}
	return f, nil
}

// scalarArithmetic is arithmetic between two scalars, one of them not a
// number.
type scalarArithmetic struct {
	op       parser.ItemType
	lhs, rhs scalar
}

func (s *scalarArithmetic) value(ev *evaluator) (float64, error) {
	l, err := s.lhs.value(ev)
	if err != nil {
		return 0, err
	}
	r, err := s.rhs.value(ev)
	if err != nil {
		return 0, err
	}
	v, _ := floatBinary(s.op, l, r)
	return v, nil
}

// scalarBinaryNode is an operator between a vector and a scalar.
type scalarBinaryNode struct {
	op     parser.ItemType
	vec    node
	scalar scalar
	// swap is set when the scalar is on the left.
	swap bool
}

func (n *scalarBinaryNode) eval(ev *evaluator) (vector, error) {
	in, err := n.vec.eval(ev)
	if err != nil {
		return nil, err
	}
	sv, err := n.scalar.value(ev)
	if err != nil {
		return nil, err
	}
	out := in[:0]
	for _, s := range in {
		if s.h != nil {
			return nil, unsupported("%s of a histogram", n.op)
		}
		l, r := s.f, sv
		if n.swap {
			l, r = r, l
		}
		f, keep := floatBinary(n.op, l, r)
		if !keep {
			continue
		}
		if n.op.IsComparisonOperator() {
			f = s.f
		} else {
			s.ls = s.ls.DropReserved(schema.IsMetadataLabel)
		}
		s.f = f
		out = append(out, s)
	}
	return out, nil
}

// floatBinary is the engine's vectorElemBinop for two floats.
func floatBinary(op parser.ItemType, l, r float64) (float64, bool) {
	switch op {
	case parser.ADD:
		return l + r, true
	case parser.SUB:
		return l - r, true
	case parser.MUL:
		return l * r, true
	case parser.DIV:
		return l / r, true
	case parser.POW:
		return math.Pow(l, r), true
	case parser.EQLC:
		return l, l == r
	case parser.NEQ:
		return l, l != r
	case parser.GTR:
		return l, l > r
	case parser.LSS:
		return l, l < r
	case parser.GTE:
		return l, l >= r
	case parser.LTE:
		return l, l <= r
	}
	panic(fmt.Sprintf("operator %s was compiled but is not computed", op))
}

// vectorBinaryNode is an operator between two vectors: a set operator,
// or arithmetic or a comparison matching one to one or, with group_left,
// many to one.
type vectorBinaryNode struct {
	op        parser.ItemType
	lhs, rhs  node
	on        bool
	matching  []string
	card      parser.VectorMatchCardinality
	include   []string
	signature func(labels.Labels, []byte) []byte
}

func (n *vectorBinaryNode) eval(ev *evaluator) (vector, error) {
	lhs, err := n.lhs.eval(ev)
	if err != nil {
		return nil, err
	}
	rhs, err := n.rhs.eval(ev)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case parser.LAND:
		if len(lhs) == 0 || len(rhs) == 0 {
			return nil, nil
		}
		return n.filter(ev, lhs, n.signatures(ev, rhs), true), nil
	case parser.LUNLESS:
		if len(lhs) == 0 || len(rhs) == 0 {
			return lhs, nil
		}
		return n.filter(ev, lhs, n.signatures(ev, rhs), false), nil
	case parser.LOR:
		switch {
		case len(lhs) == 0:
			return rhs, nil
		case len(rhs) == 0:
			return lhs, nil
		}
		return append(lhs, n.filter(ev, rhs, n.signatures(ev, lhs), false)...), nil
	}
	return n.match(ev, lhs, rhs)
}

// signatures are the matching keys of v.
func (n *vectorBinaryNode) signatures(ev *evaluator, v vector) map[string]struct{} {
	sigs := make(map[string]struct{}, len(v))
	for _, s := range v {
		ev.buf = n.signature(s.ls, ev.buf)
		sigs[string(ev.buf)] = struct{}{}
	}
	return sigs
}

// filter keeps the samples of v whose key is in sigs (in) or not, in
// v's storage.
func (n *vectorBinaryNode) filter(ev *evaluator, v vector, sigs map[string]struct{}, in bool) vector {
	out := v[:0]
	for _, s := range v {
		ev.buf = n.signature(s.ls, ev.buf)
		if _, ok := sigs[string(ev.buf)]; ok == in {
			out = append(out, s)
		}
	}
	return out
}

// match computes an arithmetic operator or a comparison one to one or
// many to one, as the engine's VectorBinop does; what it reports as an
// error is left to it.
func (n *vectorBinaryNode) match(ev *evaluator, lhs, rhs vector) (vector, error) {
	if len(lhs) == 0 || len(rhs) == 0 {
		return nil, nil
	}
	right := make(map[string]int, len(rhs))
	for i, s := range rhs {
		ev.buf = n.signature(s.ls, ev.buf)
		if _, dup := right[string(ev.buf)]; dup {
			return nil, unsupported("several series on the one side of a match")
		}
		right[string(ev.buf)] = i
	}
	// Which right-hand samples a left-hand one matched (one to one), or
	// the results of each (many to one): a second is the engine's error.
	var (
		matched []bool
		results []map[uint64]struct{}
	)
	if n.card == parser.CardOneToOne {
		matched = make([]bool, len(rhs))
	} else {
		results = make([]map[uint64]struct{}, len(rhs))
	}
	// A result is written where its left-hand sample was read or before.
	out := lhs[:0]
	for _, l := range lhs {
		ev.buf = n.signature(l.ls, ev.buf)
		i, ok := right[string(ev.buf)]
		if !ok {
			continue
		}
		r := rhs[i]
		if l.h != nil || r.h != nil {
			return nil, unsupported("%s of a histogram", n.op)
		}
		f, keep := floatBinary(n.op, l.f, r.f)
		if matched != nil {
			if matched[i] {
				return nil, unsupported("several matches one to one")
			}
			matched[i] = true
			if !keep {
				continue
			}
		}
		ls := n.resultLabels(ev, l.ls, r.ls)
		if results != nil {
			if results[i] == nil {
				results[i] = map[uint64]struct{}{}
			}
			h := ls.Hash()
			if _, dup := results[i][h]; dup {
				return nil, unsupported("grouping labels that do not make matches unique")
			}
			results[i][h] = struct{}{}
			if !keep {
				continue
			}
		}
		out = append(out, sample{ls: ls, f: f})
	}
	return out, nil
}

// resultLabels are the labels of the result of l and r, as the engine's
// resultMetric gives them.
func (n *vectorBinaryNode) resultLabels(ev *evaluator, l, r labels.Labels) labels.Labels {
	ev.lb.Reset(l)
	if arithmetic(n.op) {
		schema.Metadata{}.SetToLabels(&ev.lb)
	}
	if n.card == parser.CardOneToOne {
		if n.on {
			ev.lb.Keep(n.matching...)
		} else {
			ev.lb.Del(n.matching...)
		}
	}
	for _, name := range n.include {
		if v := r.Get(name); v != "" {
			ev.lb.Set(name, v)
		} else {
			ev.lb.Del(name)
		}
	}
	return ev.lb.Labels()
}
