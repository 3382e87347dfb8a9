package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"golang.org/x/crypto/bcrypt"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// vllmServer serves a small vLLM V1 exposition whose counters grow with
// wall time, as a live server's do.
func vllmServer(t *testing.T, model string) *httptest.Server {
	t.Helper()
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		s := time.Since(start).Seconds()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name=%[1]q} 12
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name=%[1]q} 2
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name=%[1]q} 0.5
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name=%[1]q} %[2]g
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",engine="0",gpu_memory_utilization="0.9",num_gpu_blocks="1000"} 1
`, model, 1000+400*s)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// debugLog is the --log.level=debug setting.
func debugLog(t testing.TB) promslog.Config {
	t.Helper()
	lvl := promslog.NewLevel()
	if err := lvl.Set("debug"); err != nil {
		t.Fatal(err)
	}
	return promslog.Config{Level: lvl}
}

// testAgent is a running agent in this process.
type testAgent struct {
	url    string
	config string
	stderr *testutil.SyncBuffer
	stop   func() int
}

func startAgent(t testing.TB, config string, extra ...func(*daemonFlags)) *testAgent {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "perfagent.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	f := daemonFlags{
		configFile: cfgFile, listenAddress: addr, storagePath: filepath.Join(dir, "data"),
		storageRetention: "1h", log: debugLog(t), shardCount: 1,
	}
	for _, e := range extra {
		e(&f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	stderr := &testutil.SyncBuffer{}
	go func() { done <- serve(ctx, f, stderr) }()
	a := &testAgent{url: "http://" + addr, config: cfgFile, stderr: stderr}
	var once sync.Once
	code := 0
	a.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Error("agent did not stop within 20s")
			}
		})
		return code
	}
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", stderr.String())
		}
	})
	return a
}

// waitFor polls cond every 100ms for up to a minute. What it waits for
// takes seconds on an idle machine; the margin is for a loaded one, where
// the race-built agent's scrapes and cycles run late.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, what, time.Minute, cond)
}

// waitWithin polls cond every 100ms for up to limit.
func waitWithin(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func fastConfig(targets ...string) string {
	var b strings.Builder
	b.WriteString("global: {scrape_interval: 250ms, scrape_timeout: 200ms, evaluation_interval: 250ms}\ncollector: {rate_window: 2s}\nsource:\n  targets:\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "    - url: %s/metrics\n", t)
	}
	return b.String()
}

// waitReady waits until the agent listens and has collected once.
func waitReady(t *testing.T, a *testAgent) {
	t.Helper()
	waitFor(t, "/-/ready", func() bool {
		resp, err := http.Get(a.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func TestDaemonEmbeddedModeServesSignals(t *testing.T) {
	v := vllmServer(t, "llama-8b")
	a := startAgent(t, fastConfig(v.URL))
	waitReady(t, a)
	if code, body := get(t, a.url+"/-/healthy"); code != 200 || !strings.Contains(body, "Healthy") {
		t.Errorf("/-/healthy = %d %q", code, body)
	}
	inst := strings.TrimPrefix(v.URL, "http://")
	// The rate needs two scrapes inside the window.
	waitFor(t, "generation rate", func() bool {
		_, body := get(t, a.url+"/metrics")
		return strings.Contains(body, "llm_generation_tokens_per_second{")
	})
	_, metrics := get(t, a.url+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`llm_requests_running{engine="vllm",instance=%q,model="llama-8b"} 12`, inst),
		fmt.Sprintf(`llm_kv_cache_capacity_tokens{engine="vllm",instance=%q,model="llama-8b"} 16000`, inst),
		`perfagent_instances{engine="vllm"} 1`,
		`perfagent_source_up 1`,
		`perfagent_config_last_reload_successful 1`,
		`perfagent_build_info{`,
		`perfagent_collection_duration_seconds_count`,
		`perfagent_source_query_duration_seconds_bucket`,
		`perfagent_scrape_targets 1`,
		`perfagent_scrapes_total{outcome="success"}`,
		// The upstream libraries' own metrics, as Prometheus exposes them.
		`prometheus_tsdb_head_series `,
		`prometheus_rule_group_rules{`,
		`prometheus_engine_queries `,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	testutil.PromtoolCheckMetrics(t, metrics)

	var inst1 struct {
		Data struct {
			Instance string
			Engine   string
			Settings map[string]struct{ Value, Source string }
			History  []struct {
				Name   string
				Values [][2]string
			}
		}
	}
	end := float64(time.Now().UnixMilli())/1000 + 1
	q := fmt.Sprintf("%s/api/v1/instances/%s?start=%.3f&end=%.3f&step=0.25", a.url, inst, end-60, end)
	code, body := get(t, q)
	if code != 200 {
		t.Fatalf("GET %s = %d %s", q, code, body)
	}
	if err := json.Unmarshal([]byte(body), &inst1); err != nil {
		t.Fatal(err)
	}
	if inst1.Data.Engine != "vllm" || inst1.Data.Settings["gpu_memory_utilization"].Value != "0.9" {
		t.Errorf("instance = %+v", inst1.Data)
	}
	found := false
	for _, h := range inst1.Data.History {
		found = found || (h.Name == "llm_requests_running" && len(h.Values) > 0)
	}
	if !found {
		t.Errorf("history lacks llm_requests_running: %s", body)
	}
}

// withLifecycle is --web.enable-lifecycle.
func withLifecycle(f *daemonFlags) { f.enableLifecycle = true }

func TestDaemonReloadKeepsOldConfigOnError(t *testing.T) {
	v := vllmServer(t, "m")
	a := startAgent(t, fastConfig(v.URL), withLifecycle)
	waitReady(t, a)
	if err := os.WriteFile(a.config, []byte("source:\n  targets:\n    - url: ftp://nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := post(t, a.url+"/-/reload", "")
	if code != http.StatusInternalServerError || !strings.Contains(body, "perfagent.yml:3: field source.targets[0].url") {
		t.Errorf("/-/reload with a bad file = %d %q", code, body)
	}
	_, metrics := get(t, a.url+"/metrics")
	if !strings.Contains(metrics, "perfagent_config_last_reload_successful 0") {
		t.Error("perfagent_config_last_reload_successful is not 0 after a failed reload")
	}
	_, cfg := get(t, a.url+"/api/v1/config")
	if !strings.Contains(cfg, strings.TrimPrefix(v.URL, "http://")) {
		t.Errorf("config after failed reload = %s, want the old one", cfg)
	}
	if code, _ := get(t, a.url+"/-/ready"); code != 200 {
		t.Error("agent not ready after a failed reload")
	}

	// A good file through SIGHUP takes effect.
	w := vllmServer(t, "other")
	if err := os.WriteFile(a.config, []byte(fastConfig(w.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload through SIGHUP", func() bool {
		_, m := get(t, a.url+"/metrics")
		return strings.Contains(m, "perfagent_config_last_reload_successful 1")
	})
	waitFor(t, "the new target's signals", func() bool {
		_, m := get(t, a.url+"/metrics")
		return servesModels(m) == "other"
	})
}

// servesModels lists the models of the instances a /metrics page shows
// signals for (llm_instance_info), sorted and comma-separated. Other
// families, such as counters of past bottlenecks, keep old models' labels.
func servesModels(page string) string {
	var models []string
	for _, m := range regexp.MustCompile(`(?m)^llm_instance_info\{[^}]*model="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		models = append(models, m[1])
	}
	slices.Sort(models)
	return strings.Join(models, ",")
}

// TestDaemonReloadAppliesEveryPartOrNone: a reload that one part refuses
// changes no part; one that every part accepts changes the evaluation
// interval, the rule files and disabled rules, the targets and the
// workflow section at once; the few changes that need a restart say so.
// Without --web.enable-lifecycle, /-/reload is refused.
func TestDaemonReloadAppliesEveryPartOrNone(t *testing.T) {
	v, w := vllmServer(t, "m"), vllmServer(t, "other")
	dir := t.TempDir()
	ruleFile := writeBusyRule(t, dir, "T1")
	workflowSection := func(approvers string) string {
		return fmt.Sprintf("workflow:\n  approvers: [%s]\n  webhook: {url: http://127.0.0.1:1/, secret: s}\n", approvers)
	}
	withRules := func(cfg, disabled string) string {
		return cfg + "rules:\n  rule_files: [" + ruleFile + "]\n  disabled: [" + disabled + "]\n"
	}
	a := startAgent(t, withRules(fastConfig(v.URL), "")+workflowSection("alice"))
	waitReady(t, a)
	if code, body := post(t, a.url+"/-/reload", ""); code != http.StatusForbidden || !strings.Contains(body, "Lifecycle API is not enabled") {
		t.Errorf("/-/reload without --web.enable-lifecycle = %d %q", code, body)
	}
	a.stop()

	a = startAgent(t, withRules(fastConfig(v.URL), "")+workflowSection("alice"), withLifecycle)
	waitReady(t, a)
	reload := func(cfg string) (int, string) {
		t.Helper()
		if err := os.WriteFile(a.config, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return post(t, a.url+"/-/reload", "")
	}
	interval := func() string {
		_, body := get(t, a.url+"/api/v1/rules")
		return regexp.MustCompile(`"interval_seconds":[0-9.]+`).FindString(body)
	}
	if got := interval(); got != `"interval_seconds":0.25` {
		t.Fatalf("rule groups' interval at start: %s", got)
	}

	// The rules part refuses (a file that does not exist): the new target,
	// interval and approvers are not applied either.
	slower := strings.Replace(fastConfig(w.URL), "evaluation_interval: 250ms", "evaluation_interval: 500ms", 1)
	code, body := reload(slower + "rules:\n  rule_files: [" + filepath.Join(dir, "missing.yml") + "]\n" + workflowSection("bob"))
	if code != http.StatusInternalServerError || !strings.Contains(body, "rules:") || !strings.Contains(body, "nothing was changed") {
		t.Errorf("reload the rules part refuses = %d %q", code, body)
	}
	_, cfg := get(t, a.url+"/api/v1/config")
	if !strings.Contains(cfg, strings.TrimPrefix(v.URL, "http://")) || strings.Contains(cfg, "bob") || interval() != `"interval_seconds":0.25` {
		t.Errorf("a refused reload changed something: interval %s, config %s", interval(), cfg)
	}

	// Every part accepts: all of it takes effect.
	code, body = reload(withRules(slower, "BusyServer") + workflowSection("bob"))
	if code != http.StatusOK {
		t.Fatalf("good reload = %d %q", code, body)
	}
	_, cfg = get(t, a.url+"/api/v1/config")
	if !strings.Contains(cfg, "bob") || !strings.Contains(cfg, "BusyServer") {
		t.Errorf("config after reload = %s", cfg)
	}
	if got := interval(); got != `"interval_seconds":0.5` {
		t.Errorf("rule groups' interval after reload: %s, want 0.5", got)
	}
	if _, rulesBody := get(t, a.url+"/api/v1/rules"); strings.Contains(rulesBody, `"name":"BusyServer"`) {
		t.Error("BusyServer still evaluated after it was disabled by a reload")
	}
	waitFor(t, "the new target's signals", func() bool {
		_, m := get(t, a.url+"/metrics")
		return servesModels(m) == "other"
	})

	// Changes that need a restart are refused, with the reason.
	code, body = reload("source: {prometheus: {url: http://127.0.0.1:1}}\n" + workflowSection("bob"))
	if code != http.StatusInternalServerError || !strings.Contains(body, "needs a restart") {
		t.Errorf("switching the source's mode on reload = %d %q", code, body)
	}
	code, body = reload(withRules(slower, "BusyServer"))
	if code != http.StatusInternalServerError || !strings.Contains(body, "turning workflows on or off") {
		t.Errorf("turning workflows off on reload = %d %q", code, body)
	}
}

// TestDaemonReloadIsServedAtOnce: the read endpoints keep their answers
// until the next cycle, and a reload starts anew, so the rules it changed
// are served at once rather than an interval later (an hour here).
func TestDaemonReloadIsServedAtOnce(t *testing.T) {
	v := vllmServer(t, "m")
	ruleFile := writeBusyRule(t, t.TempDir(), "T1")
	hourly := strings.Replace(fastConfig(v.URL), "evaluation_interval: 250ms", "evaluation_interval: 1h", 1)
	withDisabled := func(disabled string) string {
		return hourly + "rules:\n  rule_files: [" + ruleFile + "]\n  disabled: [" + disabled + "]\n"
	}
	a := startAgent(t, withDisabled(""), withLifecycle)
	waitReady(t, a)
	servesBusyServer := func() bool {
		_, body := get(t, a.url+"/api/v1/rules")
		return strings.Contains(body, `"name":"BusyServer"`)
	}
	if !servesBusyServer() {
		t.Fatal("BusyServer is not among the rules at start")
	}
	if err := os.WriteFile(a.config, []byte(withDisabled("BusyServer")), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, a.url+"/-/reload", ""); code != http.StatusOK {
		t.Fatalf("reload = %d %q", code, body)
	}
	if servesBusyServer() {
		t.Error("BusyServer still served after a reload disabled it")
	}
}

func TestDaemonRefusesBadConfigAtStart(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(cfgFile, []byte("source:\n  prometheus:\n    url: http://a:9090\n    retries: -2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"--config.file", cfgFile, "--storage.path", filepath.Join(dir, "data"), "--web.listen-address", testutil.FreeAddr(t)}, &stdout, &stderr)
	if code != exitUsage {
		t.Errorf("exit code = %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr.String(), "bad.yml:4: field source.prometheus.retries: must not be negative") {
		t.Errorf("stderr = %s", stderr.String())
	}
}

func TestCheckConfigCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	_ = os.WriteFile(good, []byte("source: {prometheus: {url: http://127.0.0.1:9090}}\n"), 0o644)
	_ = os.WriteFile(bad, []byte("source: {}\ncollector:\n  profile_files: [missing/*.yml]\n"), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "config", good}, &stdout, &stderr); code != exitSuccess {
		t.Errorf("check config good = %d, stderr %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "SUCCESS: remote mode, 5 engine profiles") {
		t.Errorf("stdout = %s", stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check", "config", good, bad}, &stdout, &stderr); code != exitFailure {
		t.Errorf("check config bad = %d", code)
	}
	if !strings.Contains(stderr.String(), "bad.yml:1: field source: no data source") {
		t.Errorf("stderr = %s", stderr.String())
	}
	if code := run([]string{"--version"}, &stdout, &stderr); code != exitSuccess || !strings.Contains(stdout.String(), "perfagent, version") {
		t.Errorf("--version = %d %q", code, stdout.String())
	}
	if code := run([]string{"--no-such-flag"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("unknown flag exit = %d, want %d", code, exitUsage)
	}
}

func TestDaemonWebConfigBasicAuth(t *testing.T) {
	v := vllmServer(t, "m")
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(t.TempDir(), "web.yml")
	_ = os.WriteFile(webCfg, []byte(fmt.Sprintf("basic_auth_users:\n  alice: %s\n", hash)), 0o644)
	a := startAgent(t, fastConfig(v.URL), func(f *daemonFlags) { f.webConfigFile = webCfg })
	waitFor(t, "listener", func() bool {
		resp, err := http.Get(a.url + "/-/healthy")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	req, _ := http.NewRequest(http.MethodGet, a.url+"/api/v1/health", nil)
	req.SetBasicAuth("alice", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("authenticated /api/v1/health = %d", resp.StatusCode)
	}
}

// fakePrometheus answers the query API: the vLLM instance rule with one
// instance, everything else empty; down makes it answer 503.
func fakePrometheus(t *testing.T, down *atomic.Bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "agent" || p != "hunter2" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		q := r.FormValue("query")
		switch {
		// The vLLM profile's instance list, from its core gauges.
		case r.URL.Path == "/api/v1/query" && strings.Contains(q, "vllm:(num_requests_running|") && strings.HasPrefix(q, "group"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"10.0.0.7:8000","model":"llama"},"value":[1700000000,"1"]}]}}`)
		case r.URL.Path == "/api/v1/query" && strings.Contains(q, "vllm:num_requests_running"):
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"10.0.0.7:8000","model":"llama"},"value":[1700000000,"42"]}]}}`)
		case r.URL.Path == "/api/v1/query":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		default:
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDaemonRemoteMode(t *testing.T) {
	var down atomic.Bool
	prom := fakePrometheus(t, &down)
	cfg := fmt.Sprintf(`global: {evaluation_interval: 250ms}
source:
  prometheus:
    url: %s
    basic_auth: {username: agent, password: hunter2}
    retries: 0
collector: {probe: {enabled: false}}
`, prom.URL)
	a := startAgent(t, cfg)
	waitReady(t, a)
	_, metrics := get(t, a.url+"/metrics")
	if !strings.Contains(metrics, `llm_requests_running{engine="vllm",instance="10.0.0.7:8000",model="llama"} 42`) {
		t.Errorf("/metrics lacks the remote signal:\n%s", metrics)
	}
	_, config := get(t, a.url+"/api/v1/config")
	if strings.Contains(config, "hunter2") || !strings.Contains(config, "<secret>") {
		t.Errorf("GET /api/v1/config shows the password or no <secret>: %s", config)
	}

	// The source goes down: not ready, source_up 0, and no signal is
	// exported from old data.
	down.Store(true)
	waitFor(t, "not ready", func() bool {
		code, _ := get(t, a.url+"/-/ready")
		return code == http.StatusServiceUnavailable
	})
	_, metrics = get(t, a.url+"/metrics")
	if !strings.Contains(metrics, "perfagent_source_up 0") {
		t.Error("perfagent_source_up is not 0 with the source down")
	}
	if strings.Contains(metrics, "llm_requests_running{") {
		t.Error("signals are still exported with the source down")
	}
	_, health := get(t, a.url+"/api/v1/health")
	if !strings.Contains(health, `"status":"degraded"`) || !strings.Contains(health, `"mode":"remote"`) {
		t.Errorf("health with the source down = %s", health)
	}
	down.Store(false)
	waitReady(t, a)
	_, metrics = get(t, a.url+"/metrics")
	if !strings.Contains(metrics, "llm_requests_running{") {
		t.Error("signals not exported again after the source came back")
	}
}

func TestDaemonDetectsBottlenecks(t *testing.T) {
	v := vllmServer(t, "llama-8b")
	ruleFile := writeBusyRule(t, t.TempDir(), "T1")
	a := startAgent(t, fastConfig(v.URL)+"rules:\n  rule_files: ["+ruleFile+"]\n", withLifecycle)
	waitReady(t, a)
	var body string
	waitFor(t, "the bottleneck", func() bool {
		_, body = get(t, a.url+"/api/v1/bottlenecks?state=firing&engine=vllm")
		return strings.Contains(body, `"rule":"BusyServer"`)
	})
	inst := strings.TrimPrefix(v.URL, "http://")
	for _, want := range []string{`"id":"T1"`, `"summary":"` + inst + ` runs 12 requests"`, `"recommendations":["scale_out"]`, `"evidence":[`, `llm_requests_running`} {
		if !strings.Contains(body, want) {
			t.Errorf("bottlenecks lack %s:\n%s", want, body)
		}
	}
	_, metrics := get(t, a.url+"/metrics")
	want := fmt.Sprintf(`perfagent_bottleneck{bottleneck="BusyServer",category="throughput",engine="vllm",instance=%q,model="llama-8b",severity="info",state="firing"} 1`, inst)
	if !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	testutil.PromtoolCheckMetrics(t, metrics)
	if code, body := get(t, a.url+"/api/v1/bottlenecks?severity=loud"); code != 400 || !strings.Contains(body, "severity") {
		t.Errorf("bad severity filter = %d %s", code, body)
	}
	_, rulesBody := get(t, a.url+"/api/v1/rules")
	if !strings.Contains(rulesBody, `"name":"BusyServer"`) || !strings.Contains(rulesBody, `"health":"ok"`) || !strings.Contains(rulesBody, "builtin:") {
		t.Errorf("/api/v1/rules = %s", rulesBody)
	}

	// The firing rule asks for scale_out: the recommender answers, with
	// a result or with the reason it produced none.
	code, rec := post(t, a.url+"/api/v1/optimization/recommend", `{"instance":"`+inst+`"}`)
	if code != 200 || !strings.Contains(rec, `"id":"scale_out"`) {
		t.Errorf("recommend = %d %s", code, rec)
	}
	t.Logf("recommend: %s", rec)
	if code, body := post(t, a.url+"/api/v1/optimization/recommend", `{"instance":"nope:1"}`); code != 404 {
		t.Errorf("recommend for an unknown instance = %d %s", code, body)
	}
	if code, body := post(t, a.url+"/api/v1/optimization/recommend", `{"objectives":{"ttft_p95_seconds":-1}}`); code != 400 || !strings.Contains(body, "objectives.ttft_p95_seconds") {
		t.Errorf("recommend with a negative objective = %d %s", code, body)
	}
	waitFor(t, "recommendations after a collection", func() bool {
		_, body := get(t, a.url+"/api/v1/recommendations")
		return strings.Contains(body, `scale_out`)
	})

	// A broken rule file on reload keeps the old rules.
	_ = os.WriteFile(ruleFile, []byte("groups:\n  - name: test\n    rules:\n      - alert: Broken\n        expr: sum(\n"), 0o644)
	code, msg := post(t, a.url+"/-/reload", "")
	if code != 500 || !strings.Contains(msg, "busy.yml:5") {
		t.Errorf("reload with a broken rule file = %d %q", code, msg)
	}
	_, body = get(t, a.url+"/api/v1/bottlenecks")
	if !strings.Contains(body, "BusyServer") {
		t.Error("old rules dropped after a failed reload")
	}
}

func TestAnalyzeOneShot(t *testing.T) {
	v := vllmServer(t, "llama-8b")
	dir := t.TempDir()
	writeBusyRule(t, dir, "B2")
	cfgFile := filepath.Join(dir, "perfagent.yml")
	_ = os.WriteFile(cfgFile, []byte(fastConfig(v.URL)+"rules:\n  rule_files: [busy.yml]\n"), 0o644)
	inst := strings.TrimPrefix(v.URL, "http://")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"analyze", "--config.file", cfgFile}, &stdout, &stderr); code != exitSuccess {
		t.Fatalf("analyze = %d\n%s", code, stderr.String())
	}
	for _, want := range []string{"INSTANCES (1)", inst, "vllm", "llama-8b", "BOTTLENECKS (1)", "BusyServer", "firing", "RECOMMENDATIONS"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	if code := run([]string{"analyze", "--config.file", cfgFile, "-o", "json"}, &stdout, &stderr); code != exitSuccess {
		t.Fatalf("analyze -o json = %d\n%s", code, stderr.String())
	}
	var out struct {
		Instances   []struct{ Instance string }
		Bottlenecks []struct{ Rule, State, Instance string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("analyze -o json is not JSON: %v\n%s", err, stdout.String())
	}
	if len(out.Instances) != 1 || len(out.Bottlenecks) != 1 || out.Bottlenecks[0].Instance != inst || out.Bottlenecks[0].State != "firing" {
		t.Errorf("analyze -o json = %+v", out)
	}
	if code := run([]string{"analyze", "--config.file", filepath.Join(dir, "missing.yml")}, &stdout, &stderr); code != exitUsage {
		t.Errorf("analyze with a missing file = %d, want %d", code, exitUsage)
	}
}

func TestDaemonDetectBottlenecksEndpoint(t *testing.T) {
	v := vllmServer(t, "llama-8b")
	ruleFile := writeBusyRule(t, t.TempDir(), "T1")
	a := startAgent(t, fastConfig(v.URL)+"rules:\n  rule_files: ["+ruleFile+"]\n")
	waitReady(t, a)
	waitFor(t, "the server's signals", func() bool {
		_, body := get(t, a.url+"/api/v1/instances")
		return strings.Contains(body, "llm_requests_running")
	})
	inst := strings.TrimPrefix(v.URL, "http://")
	tests := []struct {
		body string
		code int
		want string
	}{
		{`{}`, 200, `"rule":"BusyServer"`},
		{`{"instances":["` + inst + `"],"rules":["BusyServer"]}`, 200, `"state":"firing"`},
		{fmt.Sprintf(`{"at":"%d"}`, time.Now().Add(-time.Hour).Unix()), 200, `"bottlenecks":[]`},
		{`{"rules":["Nope"]}`, 400, `rules: no such rule \"Nope\"`},
		{`{"instances":["nope:1"]}`, 404, `instances: \"nope:1\"`},
		{`{"at":"tomorrow"}`, 400, `at:`},
		{fmt.Sprintf(`{"at":"%d"}`, time.Now().Add(time.Hour).Unix()), 400, `is in the future`},
	}
	for _, tc := range tests {
		code, body := post(t, a.url+"/api/v1/analysis/detect-bottlenecks", tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s = %d %s; want %d with %s", tc.body, code, body, tc.code, tc.want)
		}
	}
	// The live state is untouched: ALERTS come from the live rules only.
	_, live := get(t, a.url+"/api/v1/bottlenecks")
	if strings.Count(live, `"rule":"BusyServer"`) != 1 {
		t.Errorf("live bottlenecks after detections = %s", live)
	}
}

// TestDaemonServerThatDisappearsStopsProducingSignals checks staleness end
// to end: once a server stops answering, its signals are gone within two
// scrape intervals (plus one evaluation).
func TestDaemonServerThatDisappearsStopsProducingSignals(t *testing.T) {
	v := vllmServer(t, "leaving")
	w := vllmServer(t, "staying")
	a := startAgent(t, fastConfig(v.URL, w.URL))
	waitReady(t, a)
	waitFor(t, "both servers' signals", func() bool {
		_, m := get(t, a.url+"/metrics")
		return strings.Contains(m, `model="leaving"`) && strings.Contains(m, `model="staying"`)
	})
	v.Close()
	gone := time.Now()
	waitFor(t, "the stopped server's signals to go", func() bool {
		_, m := get(t, a.url+"/metrics")
		return !strings.Contains(m, `model="leaving"`)
	})
	// Scrape interval 250ms, evaluation 250ms: two scrapes and one
	// evaluation are 750ms; allow for the poll and a slow machine.
	if took := time.Since(gone); took > 3*time.Second {
		t.Errorf("signals of a stopped server lasted %s", took)
	}
	_, m := get(t, a.url+"/metrics")
	if !strings.Contains(m, `model="staying"`) {
		t.Error("the other server's signals went too")
	}
	_, health := get(t, a.url+"/api/v1/health")
	if !strings.Contains(health, `"targets":{"total":2,"up":1,"down":1,"unknown":0,`) {
		t.Errorf("health does not count the target down: %s", health)
	}
	if _, down := get(t, a.url+"/api/v1/targets?health=down"); !strings.Contains(down, `"url":"`+v.URL+`/metrics"`) || strings.Contains(down, w.URL) {
		t.Errorf("/api/v1/targets?health=down does not list the stopped server alone: %s", down)
	}
	if !strings.Contains(m, "perfagent_source_up 1") {
		t.Error("perfagent_source_up is not 1 with one of two servers up")
	}

	// With every server gone the embedded source is down.
	w.Close()
	waitFor(t, "perfagent_source_up 0 with every server gone", func() bool {
		_, m := get(t, a.url+"/metrics")
		return strings.Contains(m, "perfagent_source_up 0")
	})
}

// writeBusyRule writes a rule file with one rule, BusyServer, that fires
// at once on a server running more than 10 requests, as bottleneck id.
func writeBusyRule(t *testing.T, dir, id string) string {
	t.Helper()
	path := filepath.Join(dir, "busy.yml")
	rule := fmt.Sprintf(`groups:
  - name: test
    rules:
      - alert: BusyServer
        expr: llm_requests_running > 10
        labels: {category: throughput, severity: info, bottleneck: %s}
        annotations:
          summary: "{{ $labels.instance }} runs {{ $value }} requests"
          description: busy
          runbook_url: https://example.invalid/runbook
          recommend: scale_out
`, id)
	if err := os.WriteFile(path, []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
