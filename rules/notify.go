package rules

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/strutil"
)

// Alert is a bottleneck alert on its way to Alertmanager, in the shape of
// Alertmanager's API.
type Alert struct {
	Labels       labels.Labels
	Annotations  labels.Labels
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
}

// NotifyFunc delivers the alerts of one rule that are due to be sent, as
// Prometheus's notifier seam does: a firing alert when it starts and then
// every ResendDelay, with EndsAt = its ValidUntil (four evaluation
// intervals or resend delays ahead, whichever is longer), so Alertmanager
// resolves it by itself if the agent stops; a resolved alert with EndsAt =
// the time it resolved. Eval waits for it, so it must hand the alerts off
// (to a queue) rather than send them itself, and must not call the
// Manager.
type NotifyFunc func(ctx context.Context, alerts []Alert)

// sendAlerts adapts the upstream notifier seam to NotifyFunc, as
// upstream's rules.SendAlerts does for its notifier.
func (m *Manager) sendAlerts(ctx context.Context, expr string, alerts ...*promrules.Alert) {
	if m.notify == nil || len(alerts) == 0 {
		return
	}
	out := make([]Alert, 0, len(alerts))
	for _, a := range alerts {
		na := Alert{
			StartsAt:     a.FiredAt,
			Labels:       a.Labels,
			Annotations:  a.Annotations,
			GeneratorURL: m.extURL + strutil.TableLinkForExpression(expr),
		}
		if !a.ResolvedAt.IsZero() {
			na.EndsAt = a.ResolvedAt
		} else {
			na.EndsAt = a.ValidUntil
		}
		out = append(out, na)
	}
	m.notify(ctx, out)
}
