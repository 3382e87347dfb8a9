package workflow

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

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
