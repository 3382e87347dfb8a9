package rules

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
)

// buildGroups turns loaded rule files into upstream rule groups that
// evaluate with opts. restored=false makes every alerting rule wait for
// Group.RestoreForState before it writes ALERTS and ALERTS_FOR_STATE, as a
// freshly started Prometheus does.
func buildGroups(files []*RuleFile, interval time.Duration, opts *promrules.ManagerOptions, restored bool, externalLabels labels.Labels, externalURL string, logger *slog.Logger) ([]*promrules.Group, error) {
	var out []*promrules.Group
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
					return nil, errorAt(f.Name, f.pos[gi][ri].expr, fmt.Errorf("parsing expression: %w", err))
				}
				lset := promrules.FromMaps(g.Labels, r.Labels)
				if r.Alert == "" {
					rs = append(rs, promrules.NewRecordingRule(r.Record, expr, lset))
					continue
				}
				rs = append(rs, promrules.NewAlertingRule(
					r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
					lset, labels.FromMap(r.Annotations), externalLabels, externalURL,
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
	return out, nil
}
