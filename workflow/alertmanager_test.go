package workflow

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/internal/testutil"
)

func TestApprovalThroughAlertmanager(t *testing.T) {
	msgs := make(chan testutil.AlertmanagerMessage, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m testutil.AlertmanagerMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			msgs <- m
		}
	}))
	defer hook.Close()
	amURL := testutil.StartAlertmanager(t, hook.URL, []string{"workflow_id", "gate"})

	sender, err := NewAlertSender(AlertSenderOptions{URLs: []string{amURL}})
	if err != nil {
		t.Fatal(err)
	}
	store := openStore(t, t.TempDir())
	defer store.Close()
	c := newTestController(t, store, &fakeSource{rangeFn: healthy}, newFakeExecutor(), sender, nil)
	ctx := context.Background()

	// Alertmanager judges firing and resolved by its own clock.
	now := time.Now()
	w, err := c.Create(ctx, CreateRequest{ID: "wf-am", Change: testChange, Pool: []string{"a", "b"}, Current: currentOf([]string{"a", "b"}), Requester: "bob"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if next := sender.Flush(ctx, now); !next.IsZero() {
		t.Fatalf("alerts left in the queue, next attempt %v", next)
	}
	wait := func(status string) testutil.AlertmanagerMessage {
		t.Helper()
		timeout := time.NewTimer(20 * time.Second)
		defer timeout.Stop()
		for {
			select {
			case m := <-msgs:
				if m.Status == status {
					return m
				}
			case <-timeout.C:
				t.Fatalf("no %s notification within 20s", status)
			}
		}
	}
	m := wait("firing")
	if m.Version != "4" || len(m.Alerts) != 1 {
		t.Fatalf("payload %+v", m)
	}
	a := m.Alerts[0]
	if a.Labels["alertname"] != AlertApprovalRequired || a.Labels["workflow_id"] != "wf-am" || a.Labels["gate"] != "start" ||
		a.Annotations["workflow_url"] != "http://agent.example:9090/workflows/wf-am" || a.Annotations["proposal_hash"] != w.ProposalHash {
		t.Fatalf("firing alert %+v", a)
	}

	now = time.Now()
	if _, err := c.Approve(ctx, "wf-am", "alice", w.ProposalHash, "", now); err != nil {
		t.Fatal(err)
	}
	sender.Flush(ctx, now)
	m = wait("resolved")
	if m.Alerts[0].Labels["workflow_id"] != "wf-am" || m.Alerts[0].Status != "resolved" {
		t.Fatalf("resolved payload %+v", m)
	}
}
