package workflow

import (
	"fmt"
	"strings"
	"time"
)

// Alert names.
const (
	AlertApprovalRequired = "PerfAgentApprovalRequired"
	AlertRolloutFailed    = "PerfAgentRolloutFailed"
	AlertNeedsAttention   = "PerfAgentNeedsAttention"
)

// alertPolicy holds what the alert builders need from the controller.
type alertPolicy struct {
	agent       string
	externalURL string
	resend      time.Duration
	resolvedFor time.Duration
	outcomeFor  time.Duration
}

func (p alertPolicy) workflowURL(w Workflow) string {
	return strings.TrimRight(p.externalURL, "/") + "/workflows/" + w.ID
}

func (p alertPolicy) labels(w Workflow, name, severity string) map[string]string {
	kind := w.Change.Kind
	if kind == "" {
		kind = "flag"
	}
	return map[string]string{
		"alertname":   name,
		"severity":    severity,
		"agent":       p.agent,
		"workflow_id": w.ID,
		"model":       w.Change.Model,
		"engine":      w.Change.Engine,
		"change_kind": kind,
	}
}

// alerts returns the alerts w should have at now: firing for an open gate
// or an outcome that needs people, resolved for a recently closed one.
func (p alertPolicy) alerts(w Workflow, now time.Time) []Alert {
	var out []Alert
	firingUntil := now.Add(4 * p.resend)
	for _, g := range w.Gates {
		open := g.Open() && w.State.Waiting()
		if !open && (g.ClosedAt.IsZero() || now.Sub(g.ClosedAt) >= p.resolvedFor) {
			continue
		}
		a := p.approval(w, g)
		a.EndsAt = firingUntil
		if !open {
			a.EndsAt = g.ClosedAt
		}
		out = append(out, a)
	}
	if at, ok := lastEntered(w, StateNeedsAttention); ok {
		a := p.outcome(w, AlertNeedsAttention, "critical", at)
		switch {
		case w.State == StateNeedsAttention:
			a.EndsAt = firingUntil
			out = append(out, a)
		default:
			if left := lastLeft(w, StateNeedsAttention); now.Sub(left) < p.resolvedFor {
				a.EndsAt = left
				out = append(out, a)
			}
		}
	}
	if w.State == StateRolledBack && now.Sub(w.FinishedAt) < p.outcomeFor+p.resolvedFor {
		a := p.outcome(w, AlertRolloutFailed, "warning", w.FinishedAt)
		a.EndsAt = w.FinishedAt.Add(p.outcomeFor)
		if firingUntil.Before(a.EndsAt) {
			a.EndsAt = firingUntil
		}
		out = append(out, a)
	}
	return out
}

func lastEntered(w Workflow, s State) (time.Time, bool) {
	for i := len(w.Events) - 1; i >= 0; i-- {
		if w.Events[i].To == s {
			return w.Events[i].Time, true
		}
	}
	return time.Time{}, false
}

func lastLeft(w Workflow, s State) time.Time {
	for i := len(w.Events) - 1; i >= 0; i-- {
		if w.Events[i].From == s {
			return w.Events[i].Time
		}
	}
	return time.Time{}
}

func (p alertPolicy) approval(w Workflow, g Gate) Alert {
	c := w.Change
	l := p.labels(w, AlertApprovalRequired, "warning")
	l["gate"] = g.Name
	summary := fmt.Sprintf("Approve %s %s -> %s on %s (%s), gate %s", c.Flag, c.From, c.To, strings.Join(w.Pool, ", "), c.Model, g.Name)
	if strings.HasPrefix(g.Name, "inconclusive") {
		summary = fmt.Sprintf("Validation of %s %s -> %s on %s (%s) is inconclusive: continue or roll back", c.Flag, c.From, c.To, c.Model, c.Engine)
	}
	ann := map[string]string{
		"summary":       summary,
		"description":   p.describe(w),
		"workflow_url":  p.workflowURL(w),
		"proposal_hash": w.ProposalHash,
		"expires_at":    g.ExpiresAt.UTC().Format(time.RFC3339),
	}
	if n := len(w.Results); n > 0 && g.Name != "start" {
		ann["stage_result"] = resultText(w.Results[n-1])
	}
	return Alert{Labels: l, Annotations: ann, StartsAt: g.OpenedAt, GeneratorURL: p.workflowURL(w)}
}

func (p alertPolicy) outcome(w Workflow, name, severity string, since time.Time) Alert {
	c := w.Change
	reason := ""
	if n := len(w.Events); n > 0 {
		reason = w.Events[n-1].Reason
	}
	summary := fmt.Sprintf("Change %s -> %s on %s (%s) was rolled back", c.Flag, c.To, c.Model, c.Engine)
	ann := map[string]string{
		"description":  p.describe(w) + "\n\nLast event: " + reason,
		"workflow_url": p.workflowURL(w),
	}
	if name == AlertNeedsAttention {
		still := strings.Join(w.Changed(), ", ")
		summary = fmt.Sprintf("Rollback of %s on %s (%s) failed; still changed: %s", c.Flag, c.Model, c.Engine, still)
		ann["still_changed"] = still
		ann["description"] += fmt.Sprintf("\n\nStill changed: %s. Retry the rollback (POST /api/v1/workflows/%s/rollback), or restore an instance by hand and say so (POST /api/v1/workflows/%s/instances/{instance}/resolve).",
			still, w.ID, w.ID)
	}
	ann["summary"] = summary
	if n := len(w.Results); n > 0 {
		ann["stage_result"] = resultText(w.Results[n-1])
	}
	return Alert{Labels: p.labels(w, name, severity), Annotations: ann, StartsAt: since, GeneratorURL: p.workflowURL(w)}
}

func (p alertPolicy) describe(w Workflow) string {
	c := w.Change
	var b strings.Builder
	var current []string
	for _, cv := range w.Current {
		current = append(current, cv.Instance+" has "+cv.Value)
	}
	fmt.Fprintf(&b, "Change: set %s to %s%s on %d instance(s) of %s (%s), recommendation %s; now %s.\n",
		c.Flag, c.To, unitSuffix(c.Unit), len(w.Pool), c.Model, c.Engine, c.RecommendationID, strings.Join(current, ", "))
	var stages []string
	for _, s := range w.Stages {
		stages = append(stages, fmt.Sprintf("%s: %s", s.Name, strings.Join(s.Instances, ", ")))
	}
	fmt.Fprintf(&b, "Stages: %s.\n", strings.Join(stages, "; "))
	var effects []string
	for _, t := range c.Targets {
		name := MetricSpec{Signal: t.Signal, Quantile: t.Quantile}.Name()
		effects = append(effects, fmt.Sprintf("%s should %s", name, t.Expected))
	}
	if len(effects) > 0 {
		fmt.Fprintf(&b, "Expected effect: %s.\n", strings.Join(effects, "; "))
	}
	fmt.Fprintf(&b, "Evidence: %s\n", c.Evidence)
	fmt.Fprintf(&b, "Risk: %s\n", c.Risk)
	fmt.Fprintf(&b, "Rollback plan: set %s back to the value each changed instance had right before its change, newest first, through the same executor; automatic when a validation fails, retried with backoff.\n", c.Flag)
	fmt.Fprintf(&b, "Requested by %s. Decide at %s.", w.Requester, p.workflowURL(w))
	return b.String()
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

func resultText(r StageResult) string {
	var parts []string
	for _, m := range r.Metrics {
		parts = append(parts, fmt.Sprintf("%s=%s (%s)", m.Metric, m.Verdict, m.Reason))
	}
	return fmt.Sprintf("%s %s: %s", r.Stage, r.Verdict, strings.Join(parts, "; "))
}
