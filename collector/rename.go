package collector

import (
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/optiinfra/perfagent/signals"
)

// The profiles name the model `model`, but vLLM and SGLang label it
// model_name (SGLang v0.3: name), so their queries wrap every selection in
// label_replace(X, "model", "$1", "model_name", "(.*)") or a chain of such
// calls. At a thousand servers those calls are over half of what the
// profile queries cost the embedded store: each one copies every series'
// labels at every step of every query. The embedded source scrapes the
// servers itself, so it does the same renaming once per new series, with
// metric relabelling rules (whose replace action has label_replace's
// semantics: an anchored match, the source label empty when missing, the
// target deleted when the replacement is empty), and sends the queries
// without the calls.
//
// Only the metric names the profiles read through one and the same chain
// of calls, and nowhere else, are relabelled: any other reader of those
// series would see a `model` label it did not see before. And only a call
// whose argument is label-transparent (selectors of such names that do not
// mention `model`, functions that work series by series, binary operators
// that match on all labels) is removed, because then renaming before or
// after the argument gives the same series. That holds as long as no two
// series of a renamed family, names aside, differ only in a `model` label
// of their own (the rename would make them one); vLLM and SGLang have no
// such label.

// renameStep is label_replace(X, "model", "$1", source, regex).
type renameStep struct{ source, regex string }

// renameRegexes are the regular expressions a removable step may use:
// whatever matches is the value, so relabelling copies it as the call does.
var renameRegexes = []string{"(.*)", "(.+)"}

// transparentFuncs compute each output series from one input series and
// keep its labels (dropping only the metric name).
var transparentFuncs = map[string]bool{
	"rate": true, "increase": true, "irate": true, "delta": true, "idelta": true, "deriv": true,
	"resets": true, "changes": true, "histogram_count": true, "histogram_sum": true, "histogram_avg": true,
	"avg_over_time": true, "min_over_time": true, "max_over_time": true, "sum_over_time": true,
	"count_over_time": true, "last_over_time": true, "present_over_time": true, "abs": true,
}

// renameOf returns X and the steps around it, innermost first, when e is a
// chain of rename calls.
func renameOf(e parser.Expr) (parser.Expr, []renameStep, bool) {
	var steps []renameStep
	for {
		c, ok := e.(*parser.Call)
		if !ok || c.Func.Name != "label_replace" || len(c.Args) != 5 {
			break
		}
		var s [4]string
		for i := range s {
			lit, ok := c.Args[i+1].(*parser.StringLiteral)
			if !ok {
				return nil, nil, false
			}
			s[i] = lit.Val
		}
		if s[0] != signals.LabelModel || s[1] != "$1" || !slices.Contains(renameRegexes, s[3]) {
			break
		}
		steps = append(steps, renameStep{source: s[2], regex: s[3]})
		e = c.Args[0]
	}
	if len(steps) == 0 {
		return nil, nil, false
	}
	slices.Reverse(steps)
	return e, steps, true
}

// chainKey identifies a chain of steps.
func chainKey(steps []renameStep) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(s.source + "\x00" + s.regex + "\x00")
	}
	return b.String()
}

// transparentNames returns the metric names x reads when x is
// label-transparent (see above) and every selector names its metrics
// exactly (an equality or a regular expression that is a set of names).
func transparentNames(x parser.Expr) ([]string, bool) {
	var names []string
	ok := true
	parser.Inspect(x, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			set := selectorNames(n)
			if set == nil {
				ok = false
			}
			names = append(names, set...)
		case *parser.Call:
			ok = ok && transparentFuncs[n.Func.Name]
		case *parser.BinaryExpr:
			vm := n.VectorMatching
			ok = ok && (vm == nil || (!vm.On && len(vm.MatchingLabels) == 0 && len(vm.Include) == 0))
		case nil, *parser.MatrixSelector, *parser.SubqueryExpr, *parser.ParenExpr, *parser.NumberLiteral, *parser.StepInvariantExpr:
		default:
			ok = false
		}
		if !ok {
			return errStopInspect
		}
		return nil
	})
	return names, ok
}

// errStopInspect ends a parser.Inspect walk early.
var errStopInspect = errors.New("not label-transparent")

// selectorNames is the set of metric names vs can select, or nil when it
// matches on `model` or its names are not a known set.
func selectorNames(vs *parser.VectorSelector) []string {
	var names []string
	for _, m := range vs.LabelMatchers {
		switch {
		case m.Name == signals.LabelModel:
			return nil
		case m.Name != model.MetricNameLabel:
		case m.Type == labels.MatchEqual:
			names = []string{m.Value}
		case m.Type == labels.MatchRegexp && names == nil:
			names = m.SetMatches()
			if names == nil {
				return nil
			}
		default:
			return nil
		}
	}
	return names
}

// renames are the metric names relabelled at scrape time, with their
// chain of steps.
type renames struct {
	chain map[string][]renameStep // by metric name
}

// renamesOf finds the metric names of queries that may be renamed at
// scrape time: read only through rename calls of one chain, by
// label-transparent arguments.
func renamesOf(queries []parser.Expr) *renames {
	chains := map[string][]renameStep{}
	conflict := map[string]bool{}
	var raw []*parser.VectorSelector
	for _, q := range queries {
		walkRenames(q, func(names []string, steps []renameStep) {
			for _, n := range names {
				if have, ok := chains[n]; ok && chainKey(have) != chainKey(steps) {
					conflict[n] = true
				}
				chains[n] = steps
			}
		}, func(vs *parser.VectorSelector) { raw = append(raw, vs) })
	}
	r := &renames{chain: map[string][]renameStep{}}
	for n, steps := range chains {
		if conflict[n] || strings.Contains(n, ";") || slices.ContainsFunc(raw, func(vs *parser.VectorSelector) bool { return mayRead(vs, n) }) {
			continue
		}
		r.chain[n] = steps
	}
	if len(r.chain) == 0 {
		return nil
	}
	return r
}

// walkRenames calls renamed for each removable-looking rename chain of e
// (its argument's names and steps) and raw for every selector outside one.
func walkRenames(n parser.Node, renamed func([]string, []renameStep), raw func(*parser.VectorSelector)) {
	if e, ok := n.(parser.Expr); ok {
		if x, steps, ok := renameOf(e); ok {
			if names, ok := transparentNames(x); ok {
				renamed(names, steps)
				return
			}
		}
	}
	if vs, ok := n.(*parser.VectorSelector); ok {
		raw(vs)
	}
	for _, c := range parser.Children(n) {
		walkRenames(c, renamed, raw)
	}
}

// mayRead reports whether vs could select series named name.
func mayRead(vs *parser.VectorSelector, name string) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && !m.Matches(name) {
			return false
		}
	}
	return true
}

// relabelConfigs are the metric relabelling rules, in the form of a
// Prometheus configuration, that rename at scrape time: per chain, each
// step in order, for that chain's metric names only.
func (r *renames) relabelConfigs() []any {
	byChain := map[string][]string{}
	steps := map[string][]renameStep{}
	for n, s := range r.chain {
		k := chainKey(s)
		byChain[k] = append(byChain[k], n)
		steps[k] = s
	}
	keys := make([]string, 0, len(byChain))
	for k := range byChain {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []any
	for _, k := range keys {
		names := byChain[k]
		slices.Sort(names)
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = regexp.QuoteMeta(n)
		}
		// Metric names hold no ";", so the first one ends the name.
		prefix := "(?:" + strings.Join(quoted, "|") + ");"
		for _, s := range steps[k] {
			out = append(out, map[string]any{
				"source_labels": []string{model.MetricNameLabel, s.source},
				"separator":     ";",
				"regex":         prefix + s.regex,
				"target_label":  signals.LabelModel,
				"replacement":   "$1",
				"action":        "replace",
			})
		}
	}
	return out
}

// remove returns e with every rename chain over relabelled names removed.
func (r *renames) remove(e parser.Expr) parser.Expr {
	if x, steps, ok := renameOf(e); ok {
		if names, ok := transparentNames(x); ok && len(names) > 0 && r.covers(names, steps) {
			return x
		}
	}
	switch n := e.(type) {
	case *parser.Call:
		for i, a := range n.Args {
			n.Args[i] = r.remove(a)
		}
	case *parser.AggregateExpr:
		if n.Param != nil {
			n.Param = r.remove(n.Param)
		}
		n.Expr = r.remove(n.Expr)
	case *parser.BinaryExpr:
		n.LHS, n.RHS = r.remove(n.LHS), r.remove(n.RHS)
	case *parser.ParenExpr:
		n.Expr = r.remove(n.Expr)
	case *parser.UnaryExpr:
		n.Expr = r.remove(n.Expr)
	case *parser.SubqueryExpr:
		n.Expr = r.remove(n.Expr)
	case *parser.StepInvariantExpr:
		n.Expr = r.remove(n.Expr)
	}
	return e
}

// covers reports whether every name is relabelled with exactly steps.
func (r *renames) covers(names []string, steps []renameStep) bool {
	k := chainKey(steps)
	for _, n := range names {
		have, ok := r.chain[n]
		if !ok || chainKey(have) != k {
			return false
		}
	}
	return true
}

// renameQueries removes the rename calls from the queries the embedded
// source receives.
type renameQueries struct {
	renames *renames
	rewriteCache
}

// rewrite returns expr without its removable rename calls, or expr itself
// when it does not parse.
func (q *renameQueries) rewrite(expr string) string {
	return q.get(expr, func(e parser.Expr) (parser.Expr, error) { return q.renames.remove(e), nil })
}
