package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// amReceiver records the webhook payloads (version 4) Alertmanager sends.
type amReceiver struct {
	mu       sync.Mutex
	payloads []amPayload
}

type amPayload struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Alerts  []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

func (r *amReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var p amPayload
	b, _ := io.ReadAll(req.Body)
	if err := json.Unmarshal(b, &p); err == nil {
		r.mu.Lock()
		r.payloads = append(r.payloads, p)
		r.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// seen reports whether an alert with the name and status arrived for the
// workflow.
func (r *amReceiver) seen(alertname, status, workflowID string) (map[string]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.payloads {
		for _, a := range p.Alerts {
			if p.Version == "4" && a.Labels["alertname"] == alertname && a.Status == status && strings.Contains(fmt.Sprint(a.Labels), workflowID) {
				return a.Annotations, true
			}
		}
	}
	return nil, false
}

// startAlertmanager runs Debian's Alertmanager on loopback, sending to
// hookURL, and returns its URL once it answers.
func startAlertmanager(t *testing.T, hookURL string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Skip("Debian's prometheus-alertmanager is not installed; .ci/run installs it")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: %s\n    send_resolved: true\n", hookURL)
	_ = os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o600)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	url := "http://" + addr
	waitFor(t, "Alertmanager", func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return url
}

// TestWorkflowEndToEnd: a bottleneck on a simulated server → a
// recommendation → a workflow → the approval alert arrives through
// Debian's Alertmanager → approved over the API → the canary and then the
// rest changed through the webhook, each stage validated → succeeded →
// the approval alert resolved.
func TestWorkflowEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rollout in real time")
	}
	recv := &amReceiver{}
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)
	am := startAlertmanager(t, hook.URL)

	const secret = "e2e-secret"
	sim := startSimFleet(t, secret, 2)
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	webCfg := filepath.Join(dir, "web.yml")
	_ = os.WriteFile(webCfg, []byte(fmt.Sprintf("basic_auth_users:\n  alice: %s\n  bob: %s\n", hash, hash)), 0o644)
	ruleFile := filepath.Join(dir, "kv.yml")
	_ = os.WriteFile(ruleFile, []byte(`groups:
  - name: test
    rules:
      - alert: KVTest
        expr: llm_kv_cache_usage_ratio >= 0
        labels: {category: memory, severity: warning, bottleneck: B1}
        annotations: {summary: kv, description: kv, runbook_url: https://example.invalid/r, recommend: raise_gpu_memory_utilization}
`), 0o644)
	var targets strings.Builder
	for _, a := range sim.addrs {
		fmt.Fprintf(&targets, "    - url: http://%s/metrics\n", a)
	}
	cfg := "global: {scrape_interval: 250ms, scrape_timeout: 200ms, evaluation_interval: 250ms}\ncollector: {rate_window: 8s}\nsource:\n  targets:\n" + targets.String() + fmt.Sprintf(`rules: {rule_files: [%s]}
recommender:
  models:
    - {name: meta-llama/Llama-3.1-8B-Instruct, parameters: 8.03e9, layers: 32, kv_heads: 8, head_dim: 128, dtype_bytes: 2, gpu_memory_bytes: 85899345920}
workflow:
  approvers: [bob]
  alertmanagers: [%s]
  webhook: {url: %s, secret: %s}
  # A settings change restarts the server: requests in flight go back to
  # the queue. The warm-up covers that and the 8 s rate window.
  warmup: 12s
  window: 6s
`, ruleFile, am, sim.webhook.URL, secret)
	a := startAgent(t, cfg, func(f *daemonFlags) { f.webConfigFile = webCfg })
	waitFor(t, "error ratios of both servers", func() bool {
		_, body := do(t, "GET", a.url+"/api/v1/instances", "alice", "")
		return strings.Count(body, `"llm_request_error_ratio"`) == 2
	})
	signalsSince := time.Now()
	waitFor(t, "a recommendation", func() bool {
		code, body := do(t, "GET", a.url+"/api/v1/recommendations?id=raise_gpu_memory_utilization", "alice", "")
		return code == 200 && strings.Contains(body, `"proposed"`)
	})
	// The last stage leaves no untouched instance, so it is compared with
	// the window before the change: let history cover it.
	waitFor(t, "a window of history before the change", func() bool {
		return time.Since(signalsSince) > 10*time.Second
	})
	code, created := do(t, "POST", a.url+"/api/v1/workflows", "alice", fmt.Sprintf(`{"recommendation":"raise_gpu_memory_utilization","instance":%q}`, sim.addrs[0]))
	if code != 200 {
		t.Fatalf("create = %d %s", code, created)
	}
	var w struct {
		Data struct {
			ID           string `json:"id"`
			ProposalHash string `json:"proposal_hash"`
			Change       struct{ To string }
		}
	}
	_ = json.Unmarshal([]byte(created), &w)
	var ann map[string]string
	waitFor(t, "the approval alert at the receiver", func() bool {
		var ok bool
		ann, ok = recv.seen("PerfAgentApprovalRequired", "firing", w.Data.ID)
		return ok
	})
	if !strings.Contains(fmt.Sprint(ann), w.Data.ProposalHash) || !strings.Contains(fmt.Sprint(ann), "--gpu-memory-utilization") {
		t.Errorf("approval alert annotations lack the proposal hash or the change: %v", ann)
	}
	if code, msg := do(t, "POST", a.url+"/api/v1/workflows/"+w.Data.ID+"/approve", "bob", fmt.Sprintf(`{"proposal_hash":%q}`, w.Data.ProposalHash)); code != 200 {
		t.Fatalf("approve = %d %s", code, msg)
	}
	want, _ := strconv.ParseFloat(w.Data.Change.To, 64)
	var state string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		_, body := do(t, "GET", a.url+"/api/v1/workflows/"+w.Data.ID, "alice", "")
		var got struct {
			Data struct {
				State string `json:"state"`
			}
		}
		_ = json.Unmarshal([]byte(body), &got)
		state = got.Data.State
		if state == "succeeded" || state == "rolled_back" || state == "paused" || state == "aborted" || state == "needs_attention" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if state != "succeeded" {
		_, body := do(t, "GET", a.url+"/api/v1/workflows/"+w.Data.ID, "alice", "")
		t.Fatalf("workflow ended %q, want succeeded:\n%s", state, body)
	}
	for _, s := range sim.fleet.Servers() {
		if got := s.State().Settings.GPUMemoryUtilization; got != want {
			t.Errorf("%s: gpu_memory_utilization %g after promotion, want %g", s.Name(), got, want)
		}
	}
	waitFor(t, "the approval alert resolved", func() bool {
		_, ok := recv.seen("PerfAgentApprovalRequired", "resolved", w.Data.ID)
		return ok
	})
}
