package rules

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	promrules "github.com/prometheus/prometheus/rules"
)

// NotifyFunc delivers the alerts of one rule that are due to be sent, as
// Prometheus's notifier seam does: a firing alert when it starts and then
// every ResendDelay, with EndsAt = its ValidUntil (four evaluation
// intervals or resend delays ahead, whichever is longer), so Alertmanager
// resolves it by itself if the agent stops; a resolved alert with EndsAt =
// the time it resolved. GeneratorURL is left empty for the NotifyFunc to
// set: it knows where the agent's pages are. Eval waits for it, so it must
// hand the alerts off (to a queue) rather than send them itself, and must
// not call the Manager.
type NotifyFunc func(ctx context.Context, alerts ...*notifier.Alert)

// sendAlerts adapts the upstream rule seam to NotifyFunc, as upstream's
// rules.SendAlerts does for its notifier.
func (m *Manager) sendAlerts(ctx context.Context, expr string, alerts ...*promrules.Alert) {
	if m.notify == nil || len(alerts) == 0 {
		return
	}
	out := make([]*notifier.Alert, 0, len(alerts))
	for _, a := range alerts {
		na := &notifier.Alert{
			StartsAt:    a.FiredAt,
			Labels:      a.Labels,
			Annotations: m.static.merge(ruleKey(a.Labels.Get(labels.AlertName), expr), a.Annotations),
		}
		if !a.ResolvedAt.IsZero() {
			na.EndsAt = a.ResolvedAt
		} else {
			na.EndsAt = a.ValidUntil
		}
		out = append(out, na)
	}
	m.notify(ctx, out...)
}
