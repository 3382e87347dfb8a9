package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optiinfra/perfagent/workflow"
)

// The page an approval alert links to says what is still changed and how
// to put it back, and for each validation what was compared with what.
func TestWorkflowPageShowsWhatIsStillChanged(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	wf := workflow.Workflow{
		ID:    "wf-1",
		State: workflow.StateNeedsAttention,
		Current: []workflow.CurrentValue{
			{Instance: "a:8000", Value: "256", Source: "configuration"},
			{Instance: "b:8000", Value: "256", Source: "executor_read"},
		},
		Instances: []workflow.InstanceChange{
			{Instance: "a:8000", Stage: "canary", From: "256", FromSource: workflow.FromRead, AppliedAt: at, RevertedAt: at.Add(time.Minute)},
			{Instance: "b:8000", Stage: "all", From: "256", FromSource: workflow.FromRead, AppliedAt: at},
		},
		Results: []workflow.StageResult{{
			Stage: "canary", Canary: []string{"a:8000"}, Baseline: []string{"a:8000"}, PreChange: true,
			Peers: []string{"c:8000"}, NotComparable: "ttft: peers were faster",
			Start: at, End: at.Add(5 * time.Minute), BaselineStart: at.Add(-5 * time.Minute), BaselineEnd: at,
			Restarted: []string{"a:8000"},
			Verdict:   workflow.VerdictInconclusive, Reason: "inconclusive: a:8000 restarted",
			Basis: "peers c:8000 differed from the canaries before the change",
			Metrics: []workflow.MetricResult{{
				Metric: "llm_time_to_first_token_seconds", Verdict: workflow.VerdictPass,
				PreChange: &workflow.Gap{CanaryMean: 0.9, BaselineMean: 0.2, Comparable: false},
			}},
		}},
	}
	h := New(Options{
		Logger: slog.New(slog.DiscardHandler), Gatherer: prometheus.NewRegistry(), Ready: func() bool { return true },
		ExternalURL: func() string { return "http://agent:8002" },
		Workflow: func(_ context.Context, id string) (workflow.Workflow, error) {
			if id != wf.ID {
				return workflow.Workflow{}, workflow.ErrNotFound
			}
			return wf, nil
		},
	})
	code, body := serve(h, http.MethodGet, "/workflows/wf-1")
	if code != http.StatusOK {
		t.Fatalf("page = %d %s", code, body)
	}
	for _, want := range []string{
		`Still changed (not restored): <strong>b:8000 </strong>`,
		`/api/v1/workflows/wf-1/instances/b:8000/resolve`,
		`<td>b:8000</td><td>all</td><td>256 (executor_read)</td><td>2026-01-02 03:04:05 UTC</td><td><span class="fail">no</span></td>`,
		`<td>a:8000</td><td>256</td><td>configuration</td>`,
		`against its own window before the change`,
		`peers c:8000 differed from the canaries before the change.`,
		`Restarted during the window, not by this workflow: a:8000`,
		`0.9 / 0.2 <span class="fail">not comparable</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "instances/a:8000/resolve") {
		t.Error("the page offers to resolve an instance that was restored")
	}
	if code, _ := serve(h, http.MethodGet, "/workflows/nope"); code != http.StatusNotFound {
		t.Errorf("unknown workflow = %d, want 404", code)
	}
}
