package workflow

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// webhookMessage is the part of Alertmanager's webhook payload (version 4)
// the test reads.
type webhookMessage struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Alerts  []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startAlertmanager runs Debian's Alertmanager on loopback with a webhook
// receiver pointing at hookURL, and returns its URL once it listens.
func startAlertmanager(t *testing.T, hookURL string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Skip("prometheus-alertmanager not installed")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [workflow_id, gate]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
    send_resolved: true
`, hookURL)
	if err := os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), `msg="Listening on"`) {
				once = true
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(20 * time.Second):
		t.Fatal("Alertmanager did not start listening within 20s")
	}
	return "http://" + addr
}

func TestApprovalThroughAlertmanager(t *testing.T) {
	msgs := make(chan webhookMessage, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m webhookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			msgs <- m
		}
	}))
	defer hook.Close()
	amURL := startAlertmanager(t, hook.URL)

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
	wait := func(status string) webhookMessage {
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
