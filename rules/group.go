package rules

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
)

// buildGroups turns loaded rule files into upstream rule groups that
// evaluate with opts, and returns the annotations it kept out of them (see
// staticAnnotations). restored=false makes every alerting rule wait for
// Group.RestoreForState before it writes ALERTS and ALERTS_FOR_STATE, as a
// freshly started Prometheus does.
func buildGroups(files []*RuleFile, interval time.Duration, opts *promrules.ManagerOptions, restored bool, externalLabels labels.Labels, externalURL string, logger *slog.Logger) ([]*promrules.Group, staticAnnotations, error) {
	var out []*promrules.Group
	static := staticAnnotations{}
	shared := sharedRuleKeys(files, opts)
	for _, f := range files {
		for gi, g := range f.Groups {
			itv := interval
			if g.Interval != 0 {
				itv = time.Duration(g.Interval)
			}
			rs := make([]promrules.Rule, 0, len(g.Rules))
			for ri, r := range g.Rules {
				expr, err := opts.Parser.ParseExpr(r.Expr)
				if err != nil {
					return nil, nil, errorAt(f.Name, f.pos[gi][ri].expr, fmt.Errorf("parsing expression: %w", err))
				}
				lset := promrules.FromMaps(g.Labels, r.Labels)
				if r.Alert == "" {
					rs = append(rs, promrules.NewRecordingRule(r.Record, expr, lset))
					continue
				}
				annotations := labels.FromMap(r.Annotations)
				if key := ruleKey(r.Alert, expr.String()); !shared[key] {
					var fixed labels.Labels
					annotations, fixed = splitStatic(r.Annotations)
					static[key] = fixed
				}
				rs = append(rs, promrules.NewAlertingRule(
					r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
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

// staticAnnotations are the annotations without template actions of the
// alerting rules, by ruleKey. They are kept out of the upstream rules and
// added back wherever alerts are read: upstream parses and runs every
// annotation as a template for every alert at every evaluation, and in a
// large fleet most annotations are plain text (runbook URL,
// recommendations) on a thousand alerts, which expands to itself.
type staticAnnotations map[string]labels.Labels

// ruleKey names an alerting rule by its name and expression, the two
// things upstream's notify seam passes along with the rule's alerts.
func ruleKey(name, expr string) string { return name + "\x00" + expr }

// get returns annotation n of an alert of rule key whose expanded
// annotations are expanded. The two sets have no name in common.
func (s staticAnnotations) get(key string, expanded labels.Labels, n string) string {
	if v := expanded.Get(n); v != "" {
		return v
	}
	return s[key].Get(n)
}

// merge returns every annotation of an alert of rule key whose expanded
// annotations are expanded.
func (s staticAnnotations) merge(key string, expanded labels.Labels) labels.Labels {
	fixed := s[key]
	if fixed.IsEmpty() {
		return expanded
	}
	b := labels.NewBuilder(expanded)
	fixed.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
	return b.Labels()
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

// sharedRuleKeys returns the ruleKeys that more than one alerting rule
// has. Their rules keep all their annotations: the notify seam could not
// tell whose plain annotations to add back.
func sharedRuleKeys(files []*RuleFile, opts *promrules.ManagerOptions) map[string]bool {
	seen := map[string]bool{}
	shared := map[string]bool{}
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				expr, err := opts.Parser.ParseExpr(r.Expr)
				if err != nil {
					continue
				}
				key := ruleKey(r.Alert, expr.String())
				shared[key] = seen[key]
				seen[key] = true
			}
		}
	}
	return shared
}
