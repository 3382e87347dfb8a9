package instantql

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// ErrUnsupported is returned for a query, or an evaluation of one, that
// the package does not compute as the engine does; ask the engine.
var ErrUnsupported = errors.New("not evaluated directly")

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// Query is a compiled instant query.
type Query struct {
	expr     parser.Expr
	root     node
	lookback time.Duration
}

// Compile compiles expr for evaluation with the given lookback delta
// (the engine's). Anything outside the subset the package evaluates
// exactly as the engine does is an error wrapping ErrUnsupported.
func Compile(expr parser.Expr, lookback time.Duration) (*Query, error) {
	root, err := compile(expr)
	if err != nil {
		return nil, err
	}
	return &Query{expr: expr, root: root.node, lookback: lookback}, nil
}

// compiled is a node and whether its samples may carry more than one
// metric name: dropping the name could then make two series one, which
// the engine reports as an error.
type compiled struct {
	node      node
	multiName bool
}

func compile(e parser.Expr) (compiled, error) {
	switch e := e.(type) {
	case *parser.ParenExpr:
		return compile(e.Expr)
	case *parser.VectorSelector:
		if err := plainSelector(e); err != nil {
			return compiled{}, err
		}
		return compiled{node: &selectorNode{vs: e, offset: e.OriginalOffset.Milliseconds()}, multiName: e.Name == ""}, nil
	case *parser.Call:
		return compileCall(e)
	case *parser.AggregateExpr:
		return compileAggregation(e)
	case *parser.BinaryExpr:
		return compileBinary(e)
	default:
		return compiled{}, unsupported("%T", e)
	}
}

// plainSelector declines the modifiers the package does not evaluate:
// all but offset.
func plainSelector(vs *parser.VectorSelector) error {
	if vs.Timestamp != nil || vs.StartOrEnd != 0 || vs.Anchored || vs.Smoothed {
		return unsupported("selector %s with a modifier", vs)
	}
	return nil
}

func compileCall(e *parser.Call) (compiled, error) {
	if _, ok := overTimeFuncs[e.Func.Name]; ok || rangeFuncs[e.Func.Name] {
		return compileRangeCall(e)
	}
	switch e.Func.Name {
	case "clamp_min", "histogram_sum", "histogram_count", "histogram_avg", "round":
		arg, err := compile(e.Args[0])
		if err != nil {
			return compiled{}, err
		}
		if arg.multiName {
			return compiled{}, unsupported("%s over several metric names", e.Func.Name)
		}
		// round's precision is 1 unless given.
		n := &vectorFuncNode{fn: e.Func.Name, arg: arg.node, param: 1}
		if len(e.Args) > 1 {
			if n.param, err = number(e.Args[1]); err != nil {
				return compiled{}, err
			}
		}
		return compiled{node: n}, nil
	case "label_replace":
		return compileLabelReplace(e)
	default:
		return compiled{}, unsupported("function %s", e.Func.Name)
	}
}

// compileLabelReplace compiles label_replace(v, dst, replacement, src,
// regex), declining what the engine fails on when compiling (a regular
// expression or destination name that is not valid) and a new metric
// name.
func compileLabelReplace(e *parser.Call) (compiled, error) {
	var args [4]string
	for i := range args {
		s, ok := unparenthesized(e.Args[i+1]).(*parser.StringLiteral)
		if !ok {
			return compiled{}, unsupported("label_replace with a %T argument", e.Args[i+1])
		}
		args[i] = s.Val
	}
	dst, repl, src := args[0], args[1], args[2]
	regex, err := regexp.Compile("^(?s:" + args[3] + ")$")
	if err != nil {
		return compiled{}, unsupported("label_replace with the regular expression %q: %v", args[3], err)
	}
	if !model.UTF8Validation.IsValidLabelName(dst) || dst == model.MetricNameLabel {
		return compiled{}, unsupported("label_replace into %q", dst)
	}
	arg, err := compile(e.Args[0])
	if err != nil {
		return compiled{}, err
	}
	return compiled{node: &labelReplaceNode{arg: arg.node, dst: dst, repl: repl, src: src, regex: regex}, multiName: arg.multiName}, nil
}

// rangeFuncs are the functions of a range the package computes beside
// overTimeFuncs: those of a counter's range, and the least-squares line's.
var rangeFuncs = map[string]bool{"rate": true, "increase": true, "resets": true, "deriv": true, "predict_linear": true}

// compileRangeCall compiles a function of a range selector and, for
// quantile_over_time (φ) and predict_linear (seconds ahead), a number.
func compileRangeCall(e *parser.Call) (compiled, error) {
	n := &rangeFuncNode{fn: e.Func.Name}
	var ms *parser.MatrixSelector
	for _, arg := range e.Args {
		if arg.Type() != parser.ValueTypeMatrix {
			var err error
			if n.param, err = number(arg); err != nil {
				return compiled{}, err
			}
			continue
		}
		var ok bool
		if ms, ok = arg.(*parser.MatrixSelector); !ok {
			return compiled{}, unsupported("%s of a %T", e.Func.Name, arg)
		}
	}
	if ms == nil {
		return compiled{}, unsupported("%s without a range selector", e.Func.Name)
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok {
		return compiled{}, unsupported("%s of a %T", e.Func.Name, ms.VectorSelector)
	}
	if err := plainSelector(vs); err != nil {
		return compiled{}, err
	}
	n.vs, n.rng, n.offset = vs, ms.Range, vs.OriginalOffset.Milliseconds()
	// last_over_time keeps the metric name; the others drop it.
	n.keepName = e.Func.Name == "last_over_time"
	if vs.Name == "" && !n.keepName {
		return compiled{}, unsupported("%s over several metric names", e.Func.Name)
	}
	return compiled{node: n, multiName: vs.Name == ""}, nil
}

// number is the value of a number literal, parenthesized or not.
func number(e parser.Expr) (float64, error) {
	n, ok := unparenthesized(e).(*parser.NumberLiteral)
	if !ok {
		return 0, unsupported("a scalar %T", e)
	}
	return n.Val, nil
}

func unparenthesized(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// compileScalar compiles a number literal, scalar() of a vector, or
// arithmetic between scalars. Arithmetic between numbers (a rule's
// `1 / 30`) is computed once here, to the float the engine computes at
// every evaluation.
func compileScalar(e parser.Expr) (scalar, error) {
	if n, err := number(e); err == nil {
		return numberScalar(n), nil
	}
	switch x := unparenthesized(e).(type) {
	case *parser.BinaryExpr:
		return compileScalarArithmetic(x)
	case *parser.Call:
		if x.Func.Name != "scalar" {
			break
		}
		arg, err := compile(x.Args[0])
		if err != nil {
			return nil, err
		}
		return &vectorScalar{arg: arg.node}, nil
	}
	return nil, unsupported("a scalar %T", e)
}

// compileScalarArithmetic compiles arithmetic between two scalars.
func compileScalarArithmetic(e *parser.BinaryExpr) (scalar, error) {
	if e.ReturnBool || !arithmetic(e.Op) {
		return nil, unsupported("%s between scalars", e.Op)
	}
	lhs, err := compileScalar(e.LHS)
	if err != nil {
		return nil, err
	}
	rhs, err := compileScalar(e.RHS)
	if err != nil {
		return nil, err
	}
	l, lok := lhs.(numberScalar)
	r, rok := rhs.(numberScalar)
	if lok && rok {
		v, _ := floatBinary(e.Op, float64(l), float64(r))
		return numberScalar(v), nil
	}
	return &scalarArithmetic{op: e.Op, lhs: lhs, rhs: rhs}, nil
}

func compileAggregation(e *parser.AggregateExpr) (compiled, error) {
	switch e.Op {
	case parser.SUM, parser.AVG, parser.MIN, parser.MAX, parser.COUNT, parser.GROUP:
	default:
		return compiled{}, unsupported("aggregation %s", e.Op)
	}
	if e.Without || e.Param != nil {
		return compiled{}, unsupported("%s without labels or with a parameter", e.Op)
	}
	arg, err := compile(e.Expr)
	if err != nil {
		return compiled{}, err
	}
	grouping := slices.Clone(e.Grouping)
	slices.Sort(grouping)
	return compiled{node: &aggregateNode{op: e.Op, grouping: grouping, arg: arg.node}}, nil
}

func compileBinary(e *parser.BinaryExpr) (compiled, error) {
	if e.ReturnBool {
		return compiled{}, unsupported("the bool modifier")
	}
	lt, rt := e.LHS.Type(), e.RHS.Type()
	switch {
	case lt == parser.ValueTypeVector && rt == parser.ValueTypeScalar,
		lt == parser.ValueTypeScalar && rt == parser.ValueTypeVector:
		return compileScalarBinary(e, lt == parser.ValueTypeScalar)
	case lt != parser.ValueTypeVector || rt != parser.ValueTypeVector:
		return compiled{}, unsupported("%s between %s and %s", e.Op, lt, rt)
	}
	m := e.VectorMatching
	if m == nil || m.Card == parser.CardOneToMany || m.FillValues.LHS != nil || m.FillValues.RHS != nil {
		return compiled{}, unsupported("%s with group_right or fill modifiers", e.Op)
	}
	lhs, err := compile(e.LHS)
	if err != nil {
		return compiled{}, err
	}
	rhs, err := compile(e.RHS)
	if err != nil {
		return compiled{}, err
	}
	n := &vectorBinaryNode{op: e.Op, lhs: lhs.node, rhs: rhs.node, on: m.On, matching: m.MatchingLabels, card: m.Card, include: m.Include}
	n.signature = signature(m.On, m.MatchingLabels)
	switch {
	case e.Op.IsSetOperator():
		if m.Card != parser.CardManyToMany {
			return compiled{}, unsupported("%s matching %s", e.Op, m.Card)
		}
		multi := lhs.multiName
		if e.Op == parser.LOR {
			multi = multi || rhs.multiName
		}
		return compiled{node: n, multiName: multi}, nil
	case arithmetic(e.Op):
		if lhs.multiName {
			return compiled{}, unsupported("%s over several metric names", e.Op)
		}
		return compiled{node: n}, nil
	case e.Op.IsComparisonOperator():
		return compiled{node: n, multiName: lhs.multiName}, nil
	default:
		return compiled{}, unsupported("operator %s", e.Op)
	}
}

func compileScalarBinary(e *parser.BinaryExpr, swap bool) (compiled, error) {
	vecExpr, scalarExpr := e.LHS, e.RHS
	if swap {
		vecExpr, scalarExpr = scalarExpr, vecExpr
	}
	s, err := compileScalar(scalarExpr)
	if err != nil {
		return compiled{}, err
	}
	vec, err := compile(vecExpr)
	if err != nil {
		return compiled{}, err
	}
	switch {
	case arithmetic(e.Op):
		if vec.multiName {
			return compiled{}, unsupported("%s over several metric names", e.Op)
		}
		return compiled{node: &scalarBinaryNode{op: e.Op, vec: vec.node, scalar: s, swap: swap}}, nil
	case e.Op.IsComparisonOperator():
		return compiled{node: &scalarBinaryNode{op: e.Op, vec: vec.node, scalar: s, swap: swap}, multiName: vec.multiName}, nil
	default:
		return compiled{}, unsupported("operator %s", e.Op)
	}
}

// arithmetic are the operators the package computes that drop the
// metric name (the engine's changesMetricSchema, less those it does
// not compute).
func arithmetic(op parser.ItemType) bool {
	switch op {
	case parser.ADD, parser.SUB, parser.MUL, parser.DIV, parser.POW:
		return true
	}
	return false
}

// signature returns the function that writes a series' matching key into
// buf, as the engine computes it.
func signature(on bool, matching []string) func(labels.Labels, []byte) []byte {
	names := slices.Clone(matching)
	if on {
		slices.Sort(names)
		return func(ls labels.Labels, buf []byte) []byte { return ls.BytesWithLabels(buf, names...) }
	}
	names = append(names, model.MetricNameLabel, model.MetricTypeLabel, model.MetricUnitLabel)
	slices.Sort(names)
	return func(ls labels.Labels, buf []byte) []byte { return ls.BytesWithoutLabels(buf, names...) }
}
