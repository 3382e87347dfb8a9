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

	"github.com/optiinfra/perfagent/internal/testutil"
	"github.com/optiinfra/perfagent/simulator"
)

// seen reports whether an alert with the name and status arrived for the
// workflow.
func seen(r *testutil.WebhookRecorder, alertname, status, workflowID string) (map[string]string, bool) {
	for _, p := range r.Messages() {
		for _, a := range p.Alerts {
			if p.Version == "4" && a.Labels["alertname"] == alertname && a.Status == status && strings.Contains(fmt.Sprint(a.Labels), workflowID) {
				return a.Annotations, true
			}
		}
	}
	return nil, false
}

// rollout is an agent with a workflow waiting for approval, over a
// simulated fleet whose changes arrive through its webhook.
type rollout struct {
	a    *testAgent
	sim  *simFleet
	recv *testutil.WebhookRecorder
	id   string
	hash string
	to   float64
}

// startRollout runs Alertmanager, a fleet of two simulated vLLM servers,
// and the agent; waits for a raise_gpu_memory_utilization recommendation;
// and creates its workflow as alice. wrap, when not nil, wraps the
// simulator's webhook, to make a change do more than it says.
func startRollout(t *testing.T, wrap func(*simulator.Fleet, http.Handler) http.Handler) *rollout {
	return startRolloutWith(t, wrap, func(cfg, webCfg string) *testAgent {
		return startAgent(t, cfg, func(f *daemonFlags) { f.webConfigFile = webCfg })
	})
}

// startRolloutWith is startRollout with the agent started by start.
func startRolloutWith(t *testing.T, wrap func(*simulator.Fleet, http.Handler) http.Handler, start func(cfg, webCfg string) *testAgent) *rollout {
	t.Helper()
	recv := &testutil.WebhookRecorder{}
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)
	am := testutil.StartAlertmanager(t, hook.URL, nil)

	const secret = "e2e-secret"
	sim := startSimFleet(t, secret, 2)
	webhookURL := sim.webhook.URL
	if wrap != nil {
		wrapped := httptest.NewServer(wrap(sim.fleet, sim.fleet.WebhookHandler([]byte(secret), time.Now)))
		t.Cleanup(wrapped.Close)
		webhookURL = wrapped.URL
	}
	// A settings change restarts the server: requests in flight go back to
	// the queue, and latency takes tens of seconds to settle. The warm-up
	// covers that and the 8 s rate window.
	cfg, webCfg := rolloutFiles(t, sim, webhookURL, secret, am, "warmup: 30s\n  window: 10s", "alice", "bob")
	a := start(cfg, webCfg)
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
	// the window before the change: let history cover it, after the first
	// rate window, whose rates the agent computed from fewer scrapes.
	time.Sleep(time.Until(signalsSince.Add(10*time.Second + 8*time.Second + 2*time.Second)))
	id, hash, proposed := proposeKVRaise(t, a.url, sim.addrs[0])
	to, err := strconv.ParseFloat(proposed, 64)
	if err != nil || to <= 0.8 {
		t.Fatalf("proposed gpu_memory_utilization %q is no raise", proposed)
	}
	return &rollout{a: a, sim: sim, recv: recv, id: id, hash: hash, to: to}
}

func (r *rollout) approve(t *testing.T) {
	t.Helper()
	if code, msg := do(t, "POST", r.a.url+"/api/v1/workflows/"+r.id+"/approve", "bob", fmt.Sprintf(`{"proposal_hash":%q}`, r.hash)); code != 200 {
		t.Fatalf("approve = %d %s", code, msg)
	}
}

// waitEnd polls the workflow until it stops in one of the states a test
// can judge, and returns the state and the workflow's JSON.
func (r *rollout) waitEnd(t *testing.T) (string, string) {
	t.Helper()
	var state, body string
	deadline := time.Now().Add(300 * time.Second)
	for time.Now().Before(deadline) {
		_, body = do(t, "GET", r.a.url+"/api/v1/workflows/"+r.id, "alice", "")
		var got struct {
			Data struct {
				State string `json:"state"`
			}
		}
		_ = json.Unmarshal([]byte(body), &got)
		state = got.Data.State
		switch state {
		case "succeeded", "rolled_back", "paused", "aborted", "needs_attention":
			return state, body
		}
		time.Sleep(250 * time.Millisecond)
	}
	return state, body
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
	r := startRollout(t, nil)
	var ann map[string]string
	waitFor(t, "the approval alert at the receiver", func() bool {
		var ok bool
		ann, ok = seen(r.recv, "PerfAgentApprovalRequired", "firing", r.id)
		return ok
	})
	if !strings.Contains(fmt.Sprint(ann), r.hash) || !strings.Contains(fmt.Sprint(ann), "--gpu-memory-utilization") {
		t.Errorf("approval alert annotations lack the proposal hash or the change: %v", ann)
	}
	r.approve(t)
	if state, body := r.waitEnd(t); state != "succeeded" {
		t.Fatalf("workflow ended %q, want succeeded:\n%s", state, body)
	}
	for _, s := range r.sim.fleet.Servers() {
		if got := s.State().Settings.GPUMemoryUtilization; got != r.to {
			t.Errorf("%s: gpu_memory_utilization %g after promotion, want %g", s.Name(), got, r.to)
		}
	}
	waitFor(t, "the approval alert resolved", func() bool {
		_, ok := seen(r.recv, "PerfAgentApprovalRequired", "resolved", r.id)
		return ok
	})
}

// TestWorkflowRollsBackARegression: the change also halves what the
// server can run at once (as a bad rollout would), the canary's latency
// regresses against the untouched baseline, and the workflow rolls back by
// itself, raising an alert for people.
func TestWorkflowRollsBackARegression(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rollout in real time")
	}
	worse := func(fleet *simulator.Fleet, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(strings.NewReader(string(body)))
			var c simulator.ChangeRequest
			_ = json.Unmarshal(body, &c)
			next.ServeHTTP(w, req)
			for _, s := range fleet.Servers() {
				if s.Listen() != c.Instance {
					continue
				}
				seqs := `{"max_num_seqs": 2}`
				if c.Operation == "rollback" {
					seqs = `{"max_num_seqs": 256}`
				}
				_ = s.UpdateSettings([]byte(seqs))
			}
		})
	}
	r := startRollout(t, worse)
	r.approve(t)
	if state, body := r.waitEnd(t); state != "rolled_back" {
		t.Fatalf("workflow ended %q, want rolled_back:\n%s", state, body)
	}
	for _, s := range r.sim.fleet.Servers() {
		if got := s.State().Settings.GPUMemoryUtilization; got != 0.8 {
			t.Errorf("%s: gpu_memory_utilization %g after the rollback, want 0.8", s.Name(), got)
		}
	}
	waitFor(t, "the rolled-back alert at the receiver", func() bool {
		for _, p := range r.recv.Messages() {
			for _, a := range p.Alerts {
				if a.Status == "firing" && a.Labels["alertname"] != "PerfAgentApprovalRequired" && strings.Contains(fmt.Sprint(a.Labels), r.id) {
					return true
				}
			}
		}
		return false
	})
}

// agentProcess runs the agent as a child process that a test can kill.
type agentProcess struct {
	t    testing.TB
	args []string
	cmd  *exec.Cmd
	log  *testutil.SyncBuffer
}

func (p *agentProcess) start() {
	p.t.Helper()
	cmd := exec.Command(os.Args[0], p.args...)
	cmd.Env = append(os.Environ(), "PERFAGENT_TEST_RUN_MAIN=1")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
}

// kill ends the agent with SIGKILL: no shutdown code runs.
func (p *agentProcess) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// TestWorkflowSurvivesSIGKILL kills the agent with SIGKILL while a stage
// is in flight, starts it again on the same storage, and checks that the
// workflow finishes and no instance was changed twice.
func TestWorkflowSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rollout in real time and kills the agent")
	}
	var (
		mu      sync.Mutex
		changes = map[string]int{} // instance → applies that changed it
	)
	counting := func(fleet *simulator.Fleet, next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(strings.NewReader(string(body)))
			var c simulator.ChangeRequest
			_ = json.Unmarshal(body, &c)
			var before float64
			for _, s := range fleet.Servers() {
				if s.Listen() == c.Instance {
					before = s.State().Settings.GPUMemoryUtilization
				}
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, req)
			for _, s := range fleet.Servers() {
				if s.Listen() == c.Instance && c.Operation == "apply" && s.State().Settings.GPUMemoryUtilization != before {
					mu.Lock()
					changes[c.Instance]++
					mu.Unlock()
				}
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
	var proc *agentProcess
	r := startRolloutWith(t, counting, func(cfg, webCfg string) *testAgent {
		dir := t.TempDir()
		cfgFile := filepath.Join(dir, "perfagent.yml")
		_ = os.WriteFile(cfgFile, []byte(cfg), 0o644)
		addr := testutil.FreeAddr(t)
		proc = &agentProcess{t: t, log: &testutil.SyncBuffer{}, args: []string{
			"--config.file", cfgFile, "--web.config.file", webCfg, "--web.listen-address", addr,
			"--storage.path", filepath.Join(dir, "data"), "--log.level", "info",
		}}
		proc.start()
		t.Cleanup(func() {
			proc.kill()
			if t.Failed() {
				t.Logf("agent log:\n%s", proc.log.String())
			}
		})
		return &testAgent{url: "http://" + addr, config: cfgFile, stderr: proc.log, stop: func() int { proc.kill(); return 0 }}
	})
	r.approve(t)
	waitFor(t, "the canary stage in flight", func() bool {
		_, body := do(t, "GET", r.a.url+"/api/v1/workflows/"+r.id, "alice", "")
		return strings.Contains(body, `"state":"warmup"`) || strings.Contains(body, `"state":"analysing"`)
	})
	proc.kill()
	proc.start()
	// The rollout must finish after the restart. Whether it is promoted or
	// rolled back is the validation's call on this run's latencies; the
	// point is that no instance was changed twice.
	state, body := r.waitEnd(t)
	mu.Lock()
	defer mu.Unlock()
	switch state {
	case "succeeded":
		for _, inst := range r.sim.addrs {
			if changes[inst] != 1 {
				t.Errorf("%s was changed %d times, want once", inst, changes[inst])
			}
		}
	case "rolled_back":
		total := 0
		for _, inst := range r.sim.addrs {
			if changes[inst] > 1 {
				t.Errorf("%s was changed %d times, want at most once", inst, changes[inst])
			}
			total += changes[inst]
		}
		if total == 0 {
			t.Error("rolled back although nothing was changed")
		}
		for _, s := range r.sim.fleet.Servers() {
			if got := s.State().Settings.GPUMemoryUtilization; got != 0.8 {
				t.Errorf("%s: gpu_memory_utilization %g after the rollback, want 0.8", s.Name(), got)
			}
		}
	default:
		t.Fatalf("after SIGKILL and restart the workflow stopped in %q, want it finished:\n%s", state, body)
	}
	t.Logf("finished %s after the restart; changes per instance: %v", state, changes)
}

// TestWorkflowNoticesACanaryRestart restarts the canary in the middle of
// its analysis window, as an OOM or a node drain would: its counters
// reset, the result says the window shows a restart rather than the
// change, and the window starts again.
func TestWorkflowNoticesACanaryRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rollout in real time")
	}
	r := startRollout(t, nil)
	r.approve(t)
	canary := r.sim.addrs[0]
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, body := do(t, "GET", r.a.url+"/api/v1/workflows/"+r.id, "alice", "")
		if strings.Contains(body, `"state":"analysing","stage":0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stage-1 never reached its analysis window:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, msg := do(t, "POST", "http://"+canary+"/admin/restart", "", ""); code != 200 {
		t.Fatalf("restart the canary = %d %s", code, msg)
	}
	var w struct {
		Data struct {
			Events []struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"events"`
			Results []struct {
				Restarted []string `json:"restarted"`
				Verdict   string   `json:"verdict"`
			} `json:"results"`
		} `json:"data"`
	}
	waitFor(t, "the restart noticed", func() bool {
		_, body := do(t, "GET", r.a.url+"/api/v1/workflows/"+r.id, "alice", "")
		_ = json.Unmarshal([]byte(body), &w)
		return len(w.Data.Results) > 0
	})
	first := w.Data.Results[0]
	if first.Verdict != "inconclusive" || len(first.Restarted) != 1 || first.Restarted[0] != canary {
		t.Fatalf("first result %+v, want inconclusive with %s restarted", first, canary)
	}
	if ev := w.Data.Events[len(w.Data.Events)-1]; ev.Type != "canary_restarted" || !strings.Contains(ev.Reason, "starts again") {
		t.Fatalf("last event %+v, want canary_restarted", ev)
	}
}
