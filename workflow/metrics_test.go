package workflow

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func exposition(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMetrics(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	reg.MustRegister(NewWorkflowsCollector(store))
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, newFakeExecutor(), nil, m)
	w := create(t, c, "wf-1", []string{"a"}, nil, t0)
	create(t, c, "wf-2", []string{"b"}, nil, t0)
	if _, err := c.Reject(context.Background(), w.ID, "alice", w.ProposalHash, "", t0); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP perfagent_workflows Workflows in the store, by state.
# TYPE perfagent_workflows gauge
`
	for _, s := range States() {
		v := "0"
		if s == StateAwaitingApproval || s == StateRejected {
			v = "1"
		}
		want += `perfagent_workflows{state="` + s.String() + `"} ` + v + "\n"
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "perfagent_workflows"); err != nil {
		t.Fatal(err)
	}
	// wf-2 waits at its start gate, which expires after the approval TTL
	// (an hour); it has not changed anything yet.
	opened, expires := float64(t0.Unix()), float64(t0.Add(time.Hour).Unix())
	progress := fmt.Sprintf(`# HELP perfagent_workflow_info An unfinished workflow (value 1): the flag it changes, from and to which value, on which engine and model.
# TYPE perfagent_workflow_info gauge
perfagent_workflow_info{engine="vllm",flag="max-num-seqs",from="256",model="llama",state="awaiting_approval",to="128",workflow="wf-2"} 1
# HELP perfagent_workflow_stage Stages of an unfinished workflow that are behind it (0 before the first is applied).
# TYPE perfagent_workflow_stage gauge
perfagent_workflow_stage{state="awaiting_approval",workflow="wf-2"} 0
# HELP perfagent_workflow_stages Stages of an unfinished workflow in all.
# TYPE perfagent_workflow_stages gauge
perfagent_workflow_stages{state="awaiting_approval",workflow="wf-2"} 1
# HELP perfagent_workflow_instances_changed Instances an unfinished workflow has changed and not restored; in state needs_attention they wait for a person.
# TYPE perfagent_workflow_instances_changed gauge
perfagent_workflow_instances_changed{state="awaiting_approval",workflow="wf-2"} 0
# HELP perfagent_workflow_deadline_timestamp_seconds When the current wait of an unfinished workflow ends: an open gate's expiry, or the end of a warm-up or analysis window.
# TYPE perfagent_workflow_deadline_timestamp_seconds gauge
perfagent_workflow_deadline_timestamp_seconds{state="awaiting_approval",workflow="wf-2"} %g
# HELP perfagent_workflow_gate_opened_timestamp_seconds When the open gate of a workflow started to wait for a decision.
# TYPE perfagent_workflow_gate_opened_timestamp_seconds gauge
perfagent_workflow_gate_opened_timestamp_seconds{gate="start",state="awaiting_approval",workflow="wf-2"} %g
`, expires, opened)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(progress), "perfagent_workflow_info", "perfagent_workflow_stage", "perfagent_workflow_stages",
		"perfagent_workflow_instances_changed", "perfagent_workflow_deadline_timestamp_seconds", "perfagent_workflow_gate_opened_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.Transitions.WithLabelValues("awaiting_approval", "rejected")); got != 1 {
		t.Fatalf("transitions awaiting_approval->rejected = %v", got)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition(t, reg))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
