package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/optiinfra/perfagent/internal/testutil"
	"github.com/optiinfra/perfagent/simulator"
)

// simFleet serves a simulated fleet on loopback, advancing with the wall
// clock, and its change webhook.
type simFleet struct {
	fleet   *simulator.Fleet
	addrs   []string
	webhook *httptest.Server
}

func startSimFleet(t *testing.T, secret string, servers int) *simFleet {
	t.Helper()
	return vllmFleet(t, secret, servers, 16, 50*time.Millisecond)
}

// vllmFleet serves n simulated vLLM servers at gpu_memory_utilization 0.8,
// each with rate requests per second, advanced every tick, and the fleet's
// change webhook.
func vllmFleet(t *testing.T, secret string, n int, rate float64, tick time.Duration) *simFleet {
	t.Helper()
	lns := loopbackListeners(t, n)
	var b strings.Builder
	b.WriteString("seed: 3\nservers:\n")
	for i, ln := range lns {
		fmt.Fprintf(&b, "  - {name: vllm-%d, engine: vllm, listen: %q, settings: {gpu_memory_utilization: 0.8}, workload: {rate: %g}}\n", i, ln.Addr(), rate)
	}
	return serveFleet(t, b.String(), lns, secret, tick)
}

// loopbackListeners listens on n free loopback ports. Listening at once,
// rather than picking free ports to listen on later, leaves no window in
// which another process takes a port.
func loopbackListeners(t testing.TB, n int) []net.Listener {
	t.Helper()
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
	}
	return lns
}

// startDemoFleet runs the demo's fleet (examples/demo/fleet.yml: three
// vLLM, one SGLang and one TGI server) on free loopback ports instead of
// the demo's.
func startDemoFleet(t *testing.T, secret string) *simFleet {
	t.Helper()
	b, err := os.ReadFile("../../examples/demo/fleet.yml")
	if err != nil {
		t.Fatal(err)
	}
	listen := regexp.MustCompile(`listen: 127\.0\.0\.1:\d+`)
	lns := loopbackListeners(t, len(listen.FindAllString(string(b), -1)))
	next := 0
	text := listen.ReplaceAllStringFunc(string(b), func(string) string {
		next++
		return "listen: " + lns[next-1].Addr().String()
	})
	return serveFleet(t, text, lns, secret, 50*time.Millisecond)
}

// serveFleet serves the fleet file's servers on lns, in order, advancing
// the simulation every tick, and its change webhook, signed with secret.
func serveFleet(t testing.TB, fleetYAML string, lns []net.Listener, secret string, tick time.Duration) *simFleet {
	t.Helper()
	cfg, err := simulator.ParseFleet("fleet.yaml", []byte(fleetYAML))
	if err != nil {
		t.Fatal(err)
	}
	// The fleet starts five simulated minutes ago, so the agent meets it
	// in steady state: a window before a change is then a fair baseline.
	start := time.Now().Add(-5 * time.Minute)
	fleet, err := simulator.NewFleet(cfg, start)
	if err != nil {
		t.Fatal(err)
	}
	fleet.Advance(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-ticker.C:
				fleet.Advance(now)
			}
		}
	}()
	addrs := make([]string, len(lns))
	for i, s := range fleet.Servers() {
		srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(lns[i]) }()
		t.Cleanup(func() { _ = srv.Close() })
		addrs[i] = lns[i].Addr().String()
	}
	wh := httptest.NewServer(fleet.WebhookHandler([]byte(secret), time.Now))
	t.Cleanup(wh.Close)
	return &simFleet{fleet: fleet, addrs: addrs, webhook: wh}
}

func do(t *testing.T, method, url, user, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, "pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The agent may not listen yet; callers poll.
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonWorkflowThroughTheWebhook creates a workflow from a current
// recommendation, checks who may decide, approves it, and sees the canary
// changed on the simulated server through the signed webhook.
func TestDaemonWorkflowThroughTheWebhook(t *testing.T) {
	const secret = "test-secret"
	sim := startSimFleet(t, secret, 2)
	cfg, webCfg := rolloutFiles(t, sim, sim.webhook.URL, secret, "", "warmup: 1s\n  window: 5s", "alice", "bob", "mallory")
	a := startAgent(t, cfg, func(f *daemonFlags) { f.webConfigFile = webCfg })
	waitFor(t, "error ratios of both servers", func() bool {
		_, body := do(t, "GET", a.url+"/api/v1/instances", "alice", "")
		return strings.Count(body, `"llm_request_error_ratio"`) == 2
	})
	waitFor(t, "a recommendation", func() bool {
		code, body := do(t, "GET", a.url+"/api/v1/recommendations?id=raise_gpu_memory_utilization", "alice", "")
		return code == 200 && strings.Contains(body, `"proposed"`)
	})
	inst := sim.addrs[0]
	body := fmt.Sprintf(`{"recommendation":"raise_gpu_memory_utilization","instance":%q}`, inst)
	if code, _ := do(t, "POST", a.url+"/api/v1/workflows", "", body); code != 401 {
		t.Errorf("unauthenticated create = %d, want 401", code)
	}
	code, created := do(t, "POST", a.url+"/api/v1/workflows", "alice", body)
	if code != 200 {
		t.Fatalf("create = %d %s", code, created)
	}
	var w struct {
		Data struct {
			ID           string   `json:"id"`
			ProposalHash string   `json:"proposal_hash"`
			State        string   `json:"state"`
			Pool         []string `json:"pool"`
			Change       struct{ Flag, From, To string }
			Stages       []struct{ Instances []string }
		}
	}
	if err := json.Unmarshal([]byte(created), &w); err != nil {
		t.Fatal(err)
	}
	if w.Data.State != "awaiting_approval" || len(w.Data.Pool) != 2 || w.Data.Change.Flag != "--gpu-memory-utilization" || w.Data.Change.From != "0.8" ||
		len(w.Data.Stages) == 0 || len(w.Data.Stages[0].Instances) != 1 {
		t.Fatalf("created workflow = %s", created)
	}
	// The canary is the first instance of the pool; the other stays.
	var canary, other *simulator.Server
	for _, s := range sim.fleet.Servers() {
		if s.Listen() == w.Data.Stages[0].Instances[0] {
			canary = s
		} else {
			other = s
		}
	}
	if code, msg := do(t, "POST", a.url+"/api/v1/workflows", "alice", body); code != 409 {
		t.Errorf("second workflow on the same instances = %d %s, want 409", code, msg)
	}
	decide := a.url + "/api/v1/workflows/" + w.Data.ID + "/approve"
	approve := fmt.Sprintf(`{"proposal_hash":%q,"comment":"go"}`, w.Data.ProposalHash)
	for _, tc := range []struct {
		user, body string
		code       int
	}{
		{"", approve, 401},
		{"alice", approve, 403},   // the requester
		{"mallory", approve, 403}, // not an approver
		{"bob", `{"proposal_hash":"wrong"}`, 409},
		{"bob", `{}`, 400},
	} {
		if code, msg := do(t, "POST", decide, tc.user, tc.body); code != tc.code {
			t.Errorf("approve as %q with %s = %d %s, want %d", tc.user, tc.body, code, msg, tc.code)
		}
	}
	if code, msg := do(t, "POST", decide, "bob", approve); code != 200 {
		t.Fatalf("approve = %d %s", code, msg)
	}
	// A double click gives the same outcome.
	if code, msg := do(t, "POST", decide, "bob", approve); code != 200 && code != 409 {
		t.Errorf("second approval = %d %s", code, msg)
	}
	want, err := strconv.ParseFloat(w.Data.Change.To, 64)
	if err != nil || want <= 0.8 {
		t.Fatalf("proposed gpu_memory_utilization %q is no raise", w.Data.Change.To)
	}
	waitFor(t, "the canary changed through the webhook", func() bool {
		return canary.State().Settings.GPUMemoryUtilization == want
	})
	if got := other.State().Settings.GPUMemoryUtilization; got != 0.8 {
		t.Errorf("the second instance changed with the canary stage: %g", got)
	}
	code, got := do(t, "GET", a.url+"/api/v1/workflows/"+w.Data.ID, "alice", "")
	if code != 200 || !strings.Contains(got, `"events"`) || !strings.Contains(got, `"bob"`) {
		t.Errorf("GET workflow = %d %s", code, got)
	}
	// The page approval alerts link to is the UI's (TestUIInBrowser drives
	// it); it renders from the API, which knows no wf-nope.
	if code, page := do(t, "GET", a.url+"/workflows/"+w.Data.ID, "alice", ""); code != 200 || !strings.Contains(page, `<main id="main"`) {
		t.Errorf("the workflow page = %d %.200s", code, page)
	}
	if code, _ := do(t, "GET", a.url+"/api/v1/workflows/wf-nope", "alice", ""); code != 404 {
		t.Errorf("an unknown workflow = %d, want 404", code)
	}
	if code, list := do(t, "GET", a.url+"/api/v1/workflows?active=true", "alice", ""); code != 200 || !strings.Contains(list, w.Data.ID) {
		t.Errorf("list = %d %s", code, list)
	}
	if code, _ := do(t, "POST", a.url+"/api/v1/workflows/"+w.Data.ID+"/abort", "mallory", `{"reason":"no"}`); code != 403 {
		t.Errorf("abort by a non-approver = %d, want 403", code)
	}
	if code, msg := do(t, "POST", a.url+"/api/v1/workflows/"+w.Data.ID+"/rollback", "bob", `{"reason":"test over"}`); code != 200 {
		t.Errorf("rollback = %d %s", code, msg)
	}
	waitFor(t, "the manual rollback to revert the canary", func() bool {
		return canary.State().Settings.GPUMemoryUtilization == 0.8
	})
	_, metrics := do(t, "GET", a.url+"/metrics", "alice", "")
	for _, m := range []string{"perfagent_workflows{", "perfagent_workflow_transitions_total{"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	testutil.PromtoolCheckMetrics(t, metrics)
}

// rolloutFiles writes the web configuration (the users, each with the
// password "pw") and a rule that always finds B1 and asks for
// raise_gpu_memory_utilization, and returns an agent configuration over
// the fleet with workflows through webhookURL (and Alertmanager at amURL
// when given); waits holds the workflow's wait fields.
func rolloutFiles(t *testing.T, sim *simFleet, webhookURL, secret, amURL, waits string, users ...string) (cfg, webCfg string) {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var web strings.Builder
	web.WriteString("basic_auth_users:\n")
	for _, u := range users {
		fmt.Fprintf(&web, "  %s: %s\n", u, hash)
	}
	webCfg = filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, []byte(web.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ruleFile := writeKVRule(t, dir)
	var targets strings.Builder
	for _, a := range sim.addrs {
		fmt.Fprintf(&targets, "    - url: http://%s/metrics\n", a)
	}
	am := ""
	if amURL != "" {
		am = "\nalerting: {alertmanagers: [{static_configs: [{targets: [" + strings.TrimPrefix(amURL, "http://") + "]}]}]}"
	}
	// A rate window of several seconds so that every rate signal, the
	// error ratio among them, has finished requests to count.
	cfg = "global: {scrape_interval: 250ms, scrape_timeout: 200ms, evaluation_interval: 250ms}\ncollector: {rate_window: 8s}\nsource:\n  targets:\n" + targets.String() + fmt.Sprintf(`rules: {rule_files: [%s]}
recommender:
  models:
    - {name: meta-llama/Llama-3.1-8B-Instruct, parameters: 8.03e9, layers: 32, kv_heads: 8, head_dim: 128, dtype_bytes: 2, gpu_memory_bytes: 85899345920}
cost: {gpu_hour_prices: {h100: 2.5}, default_accelerator: h100}
workflow:
  approvers: [bob]
  webhook: {url: %s, secret: %s}
  %s%s
`, ruleFile, webhookURL, secret, waits, am)
	return cfg, webCfg
}

// proposeKVRaise creates, as alice, the workflow of the current
// raise_gpu_memory_utilization recommendation for instance, and returns
// its id, proposal hash and proposed value.
func proposeKVRaise(t *testing.T, url, instance string) (id, hash, to string) {
	t.Helper()
	code, created := do(t, "POST", url+"/api/v1/workflows", "alice", fmt.Sprintf(`{"recommendation":"raise_gpu_memory_utilization","instance":%q}`, instance))
	if code != 200 {
		t.Fatalf("create a workflow for %s = %d %s", instance, code, created)
	}
	var w struct {
		Data struct {
			ID           string `json:"id"`
			ProposalHash string `json:"proposal_hash"`
			Change       struct{ To string }
		}
	}
	if err := json.Unmarshal([]byte(created), &w); err != nil {
		t.Fatalf("create a workflow for %s: %v: %s", instance, err, created)
	}
	return w.Data.ID, w.Data.ProposalHash, w.Data.Change.To
}

// kvRule fires a B1 bottleneck on every instance with a KV-cache usage
// signal, recommending raise_gpu_memory_utilization: a bottleneck and a
// recommendation that are there as soon as the signals are.
const kvRule = `groups:
  - name: test
    rules:
      - alert: KVTest
        expr: llm_kv_cache_usage_ratio >= 0
        labels: {category: memory, severity: warning, bottleneck: B1}
        annotations: {summary: kv, description: kv, runbook_url: https://example.invalid/r, recommend: raise_gpu_memory_utilization}
`

// writeKVRule writes kvRule to dir/kv.yml and returns the path.
func writeKVRule(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "kv.yml")
	if err := os.WriteFile(path, []byte(kvRule), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
