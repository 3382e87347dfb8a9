package rules

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
)

// buildGroups turns loaded rule files into upstream rule groups that
// evaluate with opts, and returns the plain labels and annotations it kept
// out of them (see ruleStatics). restored=false makes every alerting rule
// wait for Group.RestoreForState before it writes ALERTS and
// ALERTS_FOR_STATE, as a freshly started Prometheus does.
func buildGroups(files []*RuleFile, interval time.Duration, opts *promrules.ManagerOptions, restored bool, externalLabels labels.Labels, externalURL string, logger *slog.Logger) ([]*promrules.Group, ruleStatics, error) {
	plans, err := planAlerts(files, opts)
	if err != nil {
		return nil, nil, err
	}
	var out []*promrules.Group
	static := ruleStatics{}
	for _, f := range files {
		for gi, g := range f.Groups {
			itv := interval
			if g.Interval != 0 {
				itv = time.Duration(g.Interval)
			}
			rs := make([]promrules.Rule, 0, len(g.Rules))
			for ri, r := range g.Rules {
				if r.Alert == "" {
					expr, err := opts.Parser.ParseExpr(r.Expr)
					if err != nil {
						return nil, nil, errorAt(f.Name, f.pos[gi][ri].expr, fmt.Errorf("parsing expression: %w", err))
					}
					rs = append(rs, promrules.NewRecordingRule(r.Record, expr, promrules.FromMaps(g.Labels, r.Labels)))
					continue
				}
				p := plans[0]
				plans = plans[1:]
				lset, annotations := p.labels, labels.FromMap(r.Annotations)
				if p.split {
					var fixed labels.Labels
					lset = p.templated
					annotations, fixed = splitStatic(r.Annotations)
					static[p.key()] = staticParts{expr: p.written.String(), labels: p.fixed, annotations: fixed}
				}
				rs = append(rs, promrules.NewAlertingRule(
					r.Alert, p.upstream(), time.Duration(r.For), time.Duration(r.KeepFiringFor),
					lset, annotations, externalLabels, externalURL,
					restored, logger.With("alert", r.Alert),
				))
			}
			out = append(out, promrules.NewGroup(promrules.GroupOptions{
				Name:          g.Name,
				File:          f.Name,
				Interval:      itv,
				Limit:         g.Limit,
				Rules:         rs,
				ShouldRestore: !restored,
				Opts:          opts,
				QueryOffset:   (*time.Duration)(g.QueryOffset),
			}))
		}
	}
	return out, static, nil
}

// alertPlan is how buildGroups builds one alerting rule.
type alertPlan struct {
	name    string
	written parser.Expr
	// labels are the rule's labels; templated and fixed split them into
	// those with template actions and those the expression can set.
	labels, templated, fixed labels.Labels
	// split keeps the plain labels and annotations out of the upstream
	// rule.
	split bool
}

// upstream is the expression the upstream rule evaluates.
func (p *alertPlan) upstream() parser.Expr {
	if p.split {
		return withLabels(p.written, p.fixed)
	}
	return p.written
}

// key is the ruleKey of the upstream rule.
func (p *alertPlan) key() string { return ruleKey(p.name, p.upstream().String()) }

// planAlerts returns a plan for every alerting rule of files, in file,
// group and rule order. It splits a rule only when no other rule ends up
// with the same key: the notify seam and the API find the parts kept out
// by key alone. Rules with the same name and expression whose plain labels
// do not tell them apart keep everything upstream.
func planAlerts(files []*RuleFile, opts *promrules.ManagerOptions) ([]*alertPlan, error) {
	var plans []*alertPlan
	for _, f := range files {
		for gi, g := range f.Groups {
			for ri, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				expr, err := opts.Parser.ParseExpr(r.Expr)
				if err != nil {
					return nil, errorAt(f.Name, f.pos[gi][ri].expr, fmt.Errorf("parsing expression: %w", err))
				}
				p := &alertPlan{name: r.Alert, written: expr, labels: promrules.FromMaps(g.Labels, r.Labels), split: true}
				p.templated, p.fixed = splitLabels(p.labels, expr, r.Annotations)
				plans = append(plans, p)
			}
		}
	}
	for changed := true; changed; {
		changed = false
		count := map[string]int{}
		for _, p := range plans {
			count[p.key()]++
		}
		for _, p := range plans {
			if p.split && count[p.key()] > 1 {
				p.split, changed = false, true
			}
		}
	}
	return plans, nil
}

// splitLabels splits the labels of an alerting rule with expression expr
// and the given annotations into those the upstream rule keeps and those
// expr can set itself (withLabels): plain values of ordinary names, when
// expr is a vector. Upstream runs every label as a template for every
// alert at every evaluation; label_replace sets a plain value for a
// fraction of that.
//
// A template's $labels are the labels of the expression's sample, which
// do not include the rule's own, and withLabels would add them there. So
// the labels stay upstream when a template of the rule may read one of
// them: when it names one, or reads $labels as a whole.
func splitLabels(lset labels.Labels, expr parser.Expr, annotations map[string]string) (templated, fixed labels.Labels) {
	if expr.Type() != parser.ValueTypeVector {
		return lset, labels.EmptyLabels()
	}
	var templates []string
	t, f := labels.NewScratchBuilder(0), labels.NewScratchBuilder(0)
	lset.Range(func(l labels.Label) {
		if strings.Contains(l.Value, "{{") || strings.HasPrefix(l.Name, "__") {
			t.Add(l.Name, l.Value)
			templates = append(templates, l.Value)
		} else {
			f.Add(l.Name, l.Value)
		}
	})
	for _, v := range annotations {
		if strings.Contains(v, "{{") {
			templates = append(templates, v)
		}
	}
	fixed = f.Labels()
	for _, text := range templates {
		if wholeLabels.MatchString(text) {
			return lset, labels.EmptyLabels()
		}
		read := false
		fixed.Range(func(l labels.Label) { read = read || strings.Contains(text, l.Name) })
		if read {
			return lset, labels.EmptyLabels()
		}
	}
	return t.Labels(), fixed
}

// wholeLabels matches a template that reads $labels (or .Labels) other
// than by one name: printed, ranged over, indexed or passed on.
var wholeLabels = regexp.MustCompile(`(\$labels|\.Labels)([^.\w]|$)`)

// withLabels returns expr with the labels fixed set on every series, as
// upstream sets an alerting rule's labels: an empty value removes the
// label. The replacement escapes "$", which label_replace would expand.
func withLabels(expr parser.Expr, fixed labels.Labels) parser.Expr {
	fixed.Range(func(l labels.Label) {
		expr = &parser.Call{
			Func: parser.Functions["label_replace"],
			Args: parser.Expressions{
				expr,
				&parser.StringLiteral{Val: l.Name},
				&parser.StringLiteral{Val: strings.ReplaceAll(l.Value, "$", "$$")},
				&parser.StringLiteral{Val: ""},
				&parser.StringLiteral{Val: ""},
			},
		}
	})
	return expr
}

// ruleStatics are what buildGroups kept out of the upstream alerting
// rules, by ruleKey, and added back wherever rules and alerts are read:
// upstream parses and runs every label and annotation as a template for
// every alert at every evaluation, and in a large fleet most of them are
// plain text (severity, runbook URL, recommendations) on a thousand
// alerts, which expands to itself.
type ruleStatics map[string]staticParts

// staticParts are the parts of one alerting rule kept out of upstream.
type staticParts struct {
	// expr is the expression as written, before withLabels.
	expr string
	// labels are the plain labels, which the upstream expression sets.
	labels labels.Labels
	// annotations are the plain annotations.
	annotations labels.Labels
}

// ruleKey names an alerting rule by its name and expression, the two
// things upstream's notify seam passes along with the rule's alerts.
func ruleKey(name, expr string) string { return name + "\x00" + expr }

// get returns annotation n of an alert of rule key whose expanded
// annotations are expanded. The two sets have no name in common.
func (s ruleStatics) get(key string, expanded labels.Labels, n string) string {
	if v := expanded.Get(n); v != "" {
		return v
	}
	return s[key].annotations.Get(n)
}

// merge returns every annotation of an alert of rule key whose expanded
// annotations are expanded.
func (s ruleStatics) merge(key string, expanded labels.Labels) labels.Labels {
	return union(expanded, s[key].annotations)
}

// rule returns the expression and labels of the alerting rule ar as
// written.
func (s ruleStatics) rule(ar *promrules.AlertingRule) (expr string, lset labels.Labels) {
	expr = ar.Query().String()
	parts, ok := s[ruleKey(ar.Name(), expr)]
	if !ok {
		return expr, ar.Labels()
	}
	return parts.expr, union(ar.Labels(), parts.labels)
}

// union returns the labels of a and b, which have no name in common,
// empty values included.
func union(a, b labels.Labels) labels.Labels {
	if b.IsEmpty() {
		return a
	}
	sb := labels.NewScratchBuilder(a.Len() + b.Len())
	add := func(l labels.Label) { sb.Add(l.Name, l.Value) }
	a.Range(add)
	b.Range(add)
	sb.Sort()
	return sb.Labels()
}

// splitStatic splits annotations into those with template actions and
// those without.
func splitStatic(annotations map[string]string) (templated, fixed labels.Labels) {
	t, f := map[string]string{}, map[string]string{}
	for k, v := range annotations {
		if strings.Contains(v, "{{") {
			t[k] = v
		} else {
			f[k] = v
		}
	}
	return labels.FromMap(t), labels.FromMap(f)
}
