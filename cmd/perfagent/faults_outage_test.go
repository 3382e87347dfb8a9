package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// Time in the outage scenarios is compressed: a production agent
// evaluates every 15 s; these run every 250 ms, 60 times faster, and every
// other period (Prometheus's scrape interval, query retry backoff,
// workflow warm-up and window, alert resend delay) shrinks with it. A
// 5-minute outage is then 20 evaluation intervals, 5 s, and a 10-minute
// one 40 intervals, 10 s.
const (
	faultInterval = 250 * time.Millisecond
	// faultMinutes is how long one production minute lasts here.
	faultMinutes = 4 * faultInterval
	// faultRateWindow is the source outage's rate window: 16 intervals,
	// as long as the simulated servers need for every rate signal to
	// count finished requests (the production default, a minute, is 4).
	faultRateWindow = 4 * time.Second
)

// ruleGroupEvaluated is the time of the cycle at which the agent last
// evaluated the rule group.
func ruleGroupEvaluated(t *testing.T, agentURL, group string) time.Time {
	t.Helper()
	code, body := do(t, http.MethodGet, agentURL+"/api/v1/rules", "alice", "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/rules = %d %s", code, body)
	}
	var resp struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					LastEvaluation time.Time `json:"last_evaluation"`
				} `json:"rules"`
			} `json:"groups"`
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("rules: %v: %s", err, body)
	}
	for _, g := range resp.Data.Groups {
		if g.Name == group && len(g.Rules) > 0 {
			// The agent evaluates groups itself, at the cycle's time, and
			// the rules keep that time.
			return g.Rules[0].LastEvaluation
		}
	}
	t.Fatalf("no rule group %s in %s", group, body)
	return time.Time{}
}

// faultBottleneck is an active bottleneck as the API lists it.
type faultBottleneck struct {
	Rule     string    `json:"rule"`
	Instance string    `json:"instance"`
	State    string    `json:"state"`
	ActiveAt time.Time `json:"active_at"`
}

func (b faultBottleneck) key() string { return b.Rule + "@" + b.Instance }

// activeBottlenecks lists the agent's active bottlenecks by rule@instance.
func activeBottlenecks(t *testing.T, agentURL, user string) map[string]faultBottleneck {
	t.Helper()
	code, body := do(t, http.MethodGet, agentURL+"/api/v1/bottlenecks", user, "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/bottlenecks = %d %s", code, body)
	}
	var resp struct {
		Data struct{ Bottlenecks []faultBottleneck }
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("bottlenecks: %v: %s", err, body)
	}
	out := map[string]faultBottleneck{}
	for _, b := range resp.Data.Bottlenecks {
		out[b.key()] = b
	}
	return out
}

// faultWorkflow is a workflow as the API shows it.
type faultWorkflow struct {
	State   string `json:"state"`
	Results []struct {
		Verdict string `json:"verdict"`
		Reason  string `json:"reason"`
	} `json:"results"`
}

func getWorkflow(t *testing.T, agentURL, id string) faultWorkflow {
	t.Helper()
	code, body := do(t, http.MethodGet, agentURL+"/api/v1/workflows/"+id, "alice", "")
	if code != http.StatusOK {
		t.Fatalf("GET workflow %s = %d %s", id, code, body)
	}
	var resp struct{ Data faultWorkflow }
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("workflow: %v: %s", err, body)
	}
	return resp.Data
}

// readyCode is the agent's /-/ready status, 0 when it does not answer.
func readyCode(agentURL string) int {
	req, err := http.NewRequest(http.MethodGet, agentURL+"/-/ready", nil)
	if err != nil {
		return 0
	}
	req.SetBasicAuth("alice", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pollUntil polls cond every 50 ms until it holds or limit passes, and
// returns how long it took; ok is false on time-out.
func pollUntil(limit time.Duration, cond func() bool) (took time.Duration, ok bool) {
	start := time.Now()
	for deadline := start.Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

// outageRules writes a rule file with a rule on a rate signal, which the
// source must compute from two scrapes within the rate window: it is the
// first to lose its data when the source restarts.
func outageRules(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.yml")
	if err := os.WriteFile(path, []byte(`groups:
  - name: outage
    rules:
      - alert: TokensFlowing
        expr: llm_generation_tokens_per_second > 0
        labels: {category: throughput, severity: info, bottleneck: T1}
        annotations: {summary: tokens, description: tokens, runbook_url: https://example.invalid/r, recommend: scale_out}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFaultSourceOutage stops the Prometheus the agent reads (remote mode)
// for the equivalent of 5 minutes while bottlenecks are active and a
// workflow is in its validation window, and measures what the agent does:
// no bottleneck appears or resolves for want of data, /-/ready turns 503,
// the workflow is neither passed nor failed on the missing data but
// paused, and all comes back once Prometheus does.
func TestFaultSourceOutage(t *testing.T) {
	faultSuite(t)
	const secret = "outage-secret"
	sim := startSimFleet(t, secret, 2)
	var targets []string
	for _, a := range sim.addrs {
		targets = append(targets, fmt.Sprintf("%q", a))
	}
	prom := testutil.RunPrometheus(t, fmt.Sprintf(`global: {scrape_interval: 250ms, scrape_timeout: 200ms}
scrape_configs:
  - job_name: vllm
    static_configs: [{targets: [%s]}]
`, strings.Join(targets, ", ")))

	// The agent reads Prometheus through a door the test closes with it.
	// Once ready again, Debian's Prometheus scrapes once, then not for
	// some 10 s (its service discovery and scrape pools settle): a
	// fraction of a production interval, but tens of compressed ones. So
	// the door opens again once Prometheus has scraped the servers twice,
	// which is what a rate needs, as the agent would find it in
	// production a scrape interval after Prometheus returns.
	var open atomic.Bool
	open.Store(true)
	promURL, _ := url.Parse(prom.URL)
	rp := httputil.NewSingleHostReverseProxy(promURL)
	door := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !open.Load() {
			http.Error(w, "Prometheus is down", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(door.Close)

	// The rollout's configuration (KVTest on every server, workflows
	// through the simulator's webhook), read from Prometheus instead of
	// scraping: retries keep Prometheus's defaults, compressed.
	cfg, webCfg := rolloutFiles(t, sim, sim.webhook.URL, secret, "", "warmup: 2s\n  window: 6s\n  pause_ttl: 1h", "alice", "bob")
	cfg = regexp.MustCompile(`source:\n  targets:\n(    - url: .*\n)+`).ReplaceAllString(cfg, fmt.Sprintf(
		"source:\n  prometheus: {url: %s, query_timeout: 2s, retries: 3, retry_backoff: 10ms}\n", door.URL))
	cfg = strings.Replace(cfg, "rules: {rule_files: [", "rules: {rule_files: ["+outageRules(t)+", ", 1)
	cfg = strings.Replace(cfg, "collector: {rate_window: 8s}", fmt.Sprintf("collector: {rate_window: %s, probe: {enabled: false}}", model.Duration(faultRateWindow)), 1)
	if !strings.Contains(cfg, "prometheus: {url:") || !strings.Contains(cfg, "tokens.yml") {
		t.Fatalf("configuration not rewritten for remote mode:\n%s", cfg)
	}
	a := startAgent(t, cfg, func(f *daemonFlags) { f.webConfigFile = webCfg })
	waitWithin(t, "the agent ready", 30*time.Second, func() bool { return readyCode(a.url) == http.StatusOK })

	// Four bottlenecks, two per server, all firing.
	var before map[string]faultBottleneck
	waitWithin(t, "KVTest and TokensFlowing firing on both servers", 60*time.Second, func() bool {
		before = activeBottlenecks(t, a.url, "alice")
		n := 0
		for _, b := range before {
			if (b.Rule == "KVTest" || b.Rule == "TokensFlowing") && b.State == "firing" {
				n++
			}
		}
		return n == 4
	})
	signalsSince := time.Now()
	waitWithin(t, "a recommendation", 60*time.Second, func() bool {
		code, body := do(t, "GET", a.url+"/api/v1/recommendations?id=raise_gpu_memory_utilization", "alice", "")
		return code == 200 && strings.Contains(body, `"proposed"`)
	})
	// The comparison before the change needs a window of history.
	time.Sleep(time.Until(signalsSince.Add(6*time.Second + 8*time.Second + 2*time.Second)))
	wfID, wfHash, _ := proposeKVRaise(t, a.url, sim.addrs[0])
	if code, msg := do(t, "POST", a.url+"/api/v1/workflows/"+wfID+"/approve", "bob", fmt.Sprintf(`{"proposal_hash":%q}`, wfHash)); code != 200 {
		t.Fatalf("approve = %d %s", code, msg)
	}
	waitWithin(t, "the workflow's validation window", 60*time.Second, func() bool {
		return getWorkflow(t, a.url, wfID).State == "analysing"
	})
	_, rulesBefore := get(t, a.url+"/api/v1/rules")
	// Built-in rules may flap on the simulated fleet with or without an
	// outage: what was active at some point of the seconds before it does
	// not count as appearing.
	flapping := map[string]bool{}
	for range 10 {
		for k := range activeBottlenecks(t, a.url, "alice") {
			flapping[k] = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	before = activeBottlenecks(t, a.url, "alice")

	// watch records, until stop, every bottleneck that appears or leaves
	// and every state the workflow takes.
	appeared, left := map[string]bool{}, map[string]bool{}
	states := map[string]bool{}
	watch := func() {
		now := activeBottlenecks(t, a.url, "alice")
		for k := range now {
			if _, ok := before[k]; !ok && !flapping[k] {
				appeared[k] = true
			}
		}
		for k, b := range before {
			if n, ok := now[k]; !ok || n.State != b.State || !n.ActiveAt.Equal(b.ActiveAt) {
				left[k] = true
			}
		}
		states[getWorkflow(t, a.url, wfID).State] = true
	}

	open.Store(false)
	prom.Stop()
	down := time.Now()
	notReady, ok := pollUntil(20*time.Second, func() bool {
		watch()
		return readyCode(a.url) == http.StatusServiceUnavailable
	})
	if !ok {
		t.Fatal("/-/ready still answers 200 20 s after Prometheus stopped")
	}
	if notReady > 2*faultInterval+time.Second {
		// Two intervals, plus what a loaded machine adds to one cycle.
		t.Errorf("/-/ready turned 503 %s after Prometheus stopped; want within two intervals (%s)", notReady, 2*faultInterval)
	}
	for time.Since(down) < 5*faultMinutes {
		watch()
		if code := readyCode(a.url); code != http.StatusServiceUnavailable {
			t.Errorf("/-/ready = %d during the outage", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// While the source is down the rules are not evaluated at all: an
	// evaluation without data would resolve every bottleneck.
	if last := ruleGroupEvaluated(t, a.url, "outage"); last.After(down.Add(faultInterval)) {
		t.Errorf("the rules were evaluated at %s, %s into the outage", last, last.Sub(down))
	}
	restarted := time.Now()
	prom.Start()
	waitWithin(t, "Prometheus to scrape again", 30*time.Second, func() bool {
		watch()
		return len(promQuery(t, prom.URL, "", fmt.Sprintf(`count_over_time(up{job="vllm"}[%ds] @ %d) >= 2`, max(1, int(time.Since(restarted).Seconds())), time.Now().Unix()))) == 2
	})
	open.Store(true)
	back := time.Now()
	recovered, ok := pollUntil(20*time.Second, func() bool {
		watch()
		if readyCode(a.url) != http.StatusOK {
			return false
		}
		_, body := do(t, "GET", a.url+"/api/v1/instances", "alice", "")
		return strings.Count(body, `"llm_generation_tokens_per_second"`) == 2
	})
	if !ok {
		t.Fatal("the agent did not recover within 20 s of Prometheus returning")
	}
	// The rules wait for the signals to settle (a rate window) before
	// they read them again.
	_, ok = pollUntil(20*time.Second, func() bool {
		watch()
		return ruleGroupEvaluated(t, a.url, "outage").After(back)
	})
	if !ok {
		t.Fatal("the rules were not evaluated again within 20 s of Prometheus returning")
	}
	rulesBack := time.Since(back)
	if rulesBack > faultRateWindow+2*faultInterval+time.Second {
		t.Errorf("the rules were evaluated again %s after Prometheus returned; want a rate window and an interval (%s)", rulesBack, faultRateWindow+faultInterval)
	}
	if readyCode(a.url) != http.StatusOK {
		t.Fatal("the agent did not recover within 30 s of Prometheus returning")
	}
	if recovered > 2*faultInterval+time.Second {
		t.Errorf("recovered %s after Prometheus returned; want within two intervals (%s)", recovered, 2*faultInterval)
	}
	// The first evaluations after the return read rates Prometheus
	// computes from its first scrapes: watch them too.
	for time.Since(back) < recovered+8*faultInterval {
		watch()
		time.Sleep(100 * time.Millisecond)
	}

	// The workflow is judged once its window is over: with most of the
	// window missing it pauses, neither passed nor failed.
	var wf faultWorkflow
	waitWithin(t, "the workflow to leave analysing", 30*time.Second, func() bool {
		wf = getWorkflow(t, a.url, wfID)
		states[wf.State] = true
		return wf.State != "analysing" && wf.State != "warmup"
	})
	if wf.State != "paused" {
		t.Errorf("workflow after the outage: %s, want paused; results %+v", wf.State, wf.Results)
	}
	for _, r := range wf.Results {
		if r.Verdict != "inconclusive" {
			t.Errorf("a stage was judged %s on a window without data: %s", r.Verdict, r.Reason)
		}
	}
	for _, s := range []string{"rolling_back", "rolled_back", "succeeded", "stage_gate", "applying", "promoting"} {
		if states[s] {
			t.Errorf("the workflow went through %s during the outage", s)
		}
	}

	after := activeBottlenecks(t, a.url, "alice")
	kept := 0
	for k, b := range before {
		if n, ok := after[k]; ok && n.State == b.State && n.ActiveAt.Equal(b.ActiveAt) && !left[k] {
			kept++
		} else {
			t.Errorf("bottleneck %s (%s since %s) changed during the outage; now %+v", k, b.State, b.ActiveAt, n)
		}
	}
	for k := range appeared {
		t.Errorf("bottleneck %s appeared during the outage", k)
	}
	// Nothing accepted is dropped: rules, bottlenecks, the workflow.
	_, rulesAfter := get(t, a.url+"/api/v1/rules")
	if n, m := strings.Count(rulesBefore, `"name":`), strings.Count(rulesAfter, `"name":`); n != m {
		t.Errorf("rules before the outage %d, after %d", n, m)
	}
	figure(t, "source outage", "remote, Prometheus down 5 min (20 intervals of %s = %s): false bottlenecks %d, active kept %d/%d, /-/ready 503 after %.2f s (2 intervals = %.2f s), workflow %s (verdicts %d, none pass or fail), ready and signals back in %.2f s, rules evaluated again after %.2f s (settling: rate window %s)",
		faultInterval, 5*faultMinutes, len(appeared), kept, len(before), notReady.Seconds(), (2 * faultInterval).Seconds(), wf.State, len(wf.Results), recovered.Seconds(), rulesBack.Seconds(), faultRateWindow)
}

// TestFaultModelServerGone stops answering for one of three simulated
// servers the agent scrapes itself (embedded mode): its instance shows as
// down and its signals go stale within two scrape intervals, the agent
// stays ready, and the other servers' bottlenecks neither change nor
// gain a false one.
func TestFaultModelServerGone(t *testing.T) {
	faultSuite(t)
	sim := startSimFleet(t, "gone-secret", 3)
	// The first server is reached through a proxy the test closes: to
	// the agent, the server is gone (connection refused).
	simURL, _ := url.Parse("http://" + sim.addrs[0])
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(simURL))
	t.Cleanup(proxy.Close)
	gone := strings.TrimPrefix(proxy.URL, "http://")
	targets := []string{proxy.URL, "http://" + sim.addrs[1], "http://" + sim.addrs[2]}

	ruleFile := writeKVRule(t, t.TempDir())
	cfg := strings.Replace(fastConfig(targets...), "collector: {rate_window: 2s}", "collector: {rate_window: 4s, probe: {enabled: false}}", 1) +
		"rules: {rule_files: [" + ruleFile + "]}\n"
	a := startAgent(t, cfg)
	waitReady(t, a)
	waitWithin(t, "KVTest firing on the three servers", 60*time.Second, func() bool {
		n := 0
		for _, b := range activeBottlenecks(t, a.url, "") {
			if b.Rule == "KVTest" && b.State == "firing" {
				n++
			}
		}
		return n == 3
	})
	flapping := map[string]bool{}
	for range 10 {
		for k := range activeBottlenecks(t, a.url, "") {
			flapping[k] = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := activeBottlenecks(t, a.url, "")
	_, rulesBefore := get(t, a.url+"/api/v1/rules")

	appeared, changed := map[string]bool{}, map[string]bool{}
	notReady := 0
	watch := func() {
		if readyCode(a.url) != http.StatusOK {
			notReady++
		}
		now := activeBottlenecks(t, a.url, "")
		for k := range now {
			if _, ok := before[k]; !ok && !flapping[k] {
				appeared[k] = true
			}
		}
		for k, b := range before {
			if b.Instance == gone {
				continue
			}
			if n, ok := now[k]; !ok || n.State != b.State || !n.ActiveAt.Equal(b.ActiveAt) {
				changed[k] = true
			}
		}
	}

	proxy.CloseClientConnections()
	proxy.Close()
	closed := time.Now()
	stale, ok := pollUntil(20*time.Second, func() bool {
		watch()
		_, m := get(t, a.url+"/metrics")
		return !strings.Contains(m, fmt.Sprintf(`llm_kv_cache_usage_ratio{engine="vllm",instance=%q`, gone))
	})
	if !ok {
		t.Fatal("the gone server's signals are still exported 20 s later")
	}
	// Two scrape intervals and one evaluation, plus a loaded machine.
	if stale > 3*faultInterval+time.Second {
		t.Errorf("the gone server's signals lasted %s; want two scrape intervals and an evaluation (%s)", stale, 3*faultInterval)
	}
	_, ok = pollUntil(20*time.Second, func() bool {
		watch()
		_, h := get(t, a.url+"/api/v1/targets?limit=0")
		var targets struct {
			Data struct {
				Targets []struct {
					Instance string `json:"instance"`
					Health   string `json:"health"`
				} `json:"targets"`
			}
		}
		if err := json.Unmarshal([]byte(h), &targets); err != nil {
			t.Fatalf("targets: %v: %s", err, h)
		}
		for _, tg := range targets.Data.Targets {
			if tg.Instance == gone {
				return tg.Health == "down"
			}
		}
		return false
	})
	if !ok {
		_, h := get(t, a.url+"/api/v1/targets?limit=0")
		t.Fatalf("the gone server's target is not down 20 s later: %s", h)
	}
	down := time.Since(closed)
	_, ok = pollUntil(20*time.Second, func() bool {
		watch()
		_, still := activeBottlenecks(t, a.url, "")["KVTest@"+gone]
		return !still
	})
	if !ok {
		t.Error("the gone server's KVTest still active 20 s later")
	}
	ownResolved := time.Since(closed)
	// Watch the others for as long again as the outage scenario lasts.
	for time.Since(closed) < 5*faultMinutes {
		watch()
		time.Sleep(100 * time.Millisecond)
	}

	after := activeBottlenecks(t, a.url, "")
	others, kept := 0, 0
	for k, b := range before {
		if b.Instance == gone {
			continue
		}
		others++
		if n, ok := after[k]; ok && n.State == b.State && n.ActiveAt.Equal(b.ActiveAt) && !changed[k] {
			kept++
		} else {
			t.Errorf("bottleneck %s of a server still up changed when another went", k)
		}
	}
	for k := range appeared {
		t.Errorf("bottleneck %s appeared when a server went", k)
	}
	if notReady > 0 {
		t.Errorf("/-/ready failed %d times with two of three servers up", notReady)
	}
	_, m := get(t, a.url+"/metrics")
	for _, addr := range sim.addrs[1:] {
		if !strings.Contains(m, fmt.Sprintf(`llm_kv_cache_usage_ratio{engine="vllm",instance=%q`, addr)) {
			t.Errorf("the signals of %s, still up, went too", addr)
		}
	}
	_, rulesAfter := get(t, a.url+"/api/v1/rules")
	if n, m := strings.Count(rulesBefore, `"name":`), strings.Count(rulesAfter, `"name":`); n != m {
		t.Errorf("rules before %d, after %d", n, m)
	}
	figure(t, "model server gone", "embedded, 1 of 3 servers stops answering: signals stale after %.2f s (2 scrapes + 1 evaluation = %.2f s), target down after %.2f s, its bottleneck resolved after %.2f s, false bottlenecks %d, others' bottlenecks kept %d/%d, /-/ready 200 throughout",
		stale.Seconds(), (3 * faultInterval).Seconds(), down.Seconds(), ownResolved.Seconds(), len(appeared), kept, others)
}

// amIdentities lists the alerts an Alertmanager holds, named by their
// alert name and the label that tells them apart (instance or workflow).
func amIdentities(t *testing.T, amURL string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, name := range []string{"KVTest", "PerfAgentApprovalRequired"} {
		for _, a := range alertmanagerAlerts(t, amURL, name) {
			out[name+"@"+a.Labels["instance"]+a.Labels["workflow_id"]] = true
		}
	}
	return out
}

// metricValue is the value of the first sample of /metrics whose line
// starts with prefix, or -1.
func metricValue(page, prefix string) float64 {
	for line := range strings.SplitSeq(page, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			var v float64
			if _, err := fmt.Sscan(strings.TrimSpace(rest), &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// TestFaultAlertmanagerOutage stops one of the two Alertmanagers the agent
// sends to for the equivalent of 10 minutes, while bottlenecks fire and a
// workflow asks for approval: the approval goes through the API, the
// workflow goes on, the other Alertmanager gets every alert meanwhile,
// the failed deliveries are counted, and the Alertmanager that was down
// has every alert within a resend delay of its return.
func TestFaultAlertmanagerOutage(t *testing.T) {
	faultSuite(t)
	recv1, recv2 := &testutil.WebhookRecorder{}, &testutil.WebhookRecorder{}
	hook1, hook2 := httptest.NewServer(recv1), httptest.NewServer(recv2)
	t.Cleanup(hook1.Close)
	t.Cleanup(hook2.Close)
	am1, am2 := testutil.RunAlertmanager(t, hook1.URL, nil), testutil.RunAlertmanager(t, hook2.URL, nil)
	const secret = "am-secret"
	sim := startSimFleet(t, secret, 2)
	cfg, webCfg := rolloutFiles(t, sim, sim.webhook.URL, secret, am1.URL, "warmup: 2s\n  window: 6s", "alice", "bob")
	am1Host, am2Host := strings.TrimPrefix(am1.URL, "http://"), strings.TrimPrefix(am2.URL, "http://")
	cfg = strings.Replace(cfg, "targets: ["+am1Host+"]", "targets: ["+am1Host+", "+am2Host+"]", 1)
	if !strings.Contains(cfg, am2Host) {
		t.Fatalf("configuration lacks the second Alertmanager:\n%s", cfg)
	}
	// The resend delay, one minute in production, is one compressed
	// minute: the 10-minute outage is 10 resend delays.
	a := startAgent(t, cfg, func(f *daemonFlags) {
		f.webConfigFile = webCfg
		f.resendDelay = faultMinutes
	})
	waitWithin(t, "the agent ready", 30*time.Second, func() bool { return readyCode(a.url) == http.StatusOK })
	waitWithin(t, "KVTest of both servers in both Alertmanagers", 60*time.Second, func() bool {
		return len(alertmanagerAlerts(t, am1.URL, "KVTest")) == 2 && len(alertmanagerAlerts(t, am2.URL, "KVTest")) == 2
	})
	waitWithin(t, "error ratios of both servers", 60*time.Second, func() bool {
		_, body := do(t, "GET", a.url+"/api/v1/instances", "alice", "")
		return strings.Count(body, `"llm_request_error_ratio"`) == 2
	})
	waitWithin(t, "a recommendation for the first server", 60*time.Second, func() bool {
		_, body := do(t, "GET", a.url+"/api/v1/recommendations?id=raise_gpu_memory_utilization", "alice", "")
		return strings.Contains(body, `"proposed"`) && strings.Contains(body, sim.addrs[0])
	})
	before := activeBottlenecks(t, a.url, "alice")
	_, rulesBefore := get(t, a.url+"/api/v1/rules")
	amSend := func(host string) string { return fmt.Sprintf(`{alertmanager="http://%s/api/v2/alerts"}`, host) }

	am1.Stop()
	down := time.Now()

	// A workflow asks for approval with one Alertmanager down: its alert
	// reaches the other, the approval through the API works, and the
	// workflow goes on without waiting for any Alertmanager.
	id, hash, _ := proposeKVRaise(t, a.url, sim.addrs[0])
	waitWithin(t, "the approval request in the Alertmanager still up", 20*time.Second, func() bool {
		return amIdentities(t, am2.URL)["PerfAgentApprovalRequired@"+id]
	})
	approved := time.Now()
	if code, msg := do(t, "POST", a.url+"/api/v1/workflows/"+id+"/approve", "bob", fmt.Sprintf(`{"proposal_hash":%q}`, hash)); code != 200 {
		t.Fatalf("approve with an Alertmanager down = %d %s", code, msg)
	}
	var state string
	_, ok := pollUntil(20*time.Second, func() bool {
		state = getWorkflow(t, a.url, id).State
		return state == "warmup" || state == "analysing"
	})
	if !ok {
		t.Fatalf("the approved workflow is %s 20 s later, not in its warm-up: blocked on the Alertmanager that is down?", state)
	}
	moved := time.Since(approved)
	for time.Since(down) < 10*faultMinutes {
		time.Sleep(100 * time.Millisecond)
	}
	_, m := do(t, "GET", a.url+"/metrics", "alice", "")
	errorsDuring := metricValue(m, "perfagent_notifications_errors_total"+amSend(am1Host))
	dropped := metricValue(m, "perfagent_notifications_dropped_total"+amSend(am1Host))
	capacity := metricValue(m, "perfagent_notifications_queue_capacity")
	if errorsDuring <= 0 || dropped <= 0 {
		t.Errorf("failed deliveries to the Alertmanager that is down not counted: errors %g, dropped %g", errorsDuring, dropped)
	}
	if capacity != 10000 {
		t.Errorf("perfagent_notifications_queue_capacity = %g, want the default 10000", capacity)
	}
	if v := metricValue(m, "perfagent_notifications_dropped_total"+amSend(am2Host)); v != 0 {
		t.Errorf("alerts dropped for the Alertmanager that stayed up: %g", v)
	}
	// What the Alertmanager that stayed up holds is what the other one
	// must get: the bottlenecks, and the approval request (resolved since
	// the approval, if Alertmanager lists resolved alerts).
	want := amIdentities(t, am2.URL)
	if len(want) < 2 {
		t.Errorf("the Alertmanager that stayed up holds %v", want)
	}

	// Back: within a resend delay (plus a loaded machine), the
	// Alertmanager that was down holds every alert the other does.
	am1.Start()
	back := time.Now()
	var got map[string]bool
	_, ok = pollUntil(30*time.Second, func() bool {
		got = amIdentities(t, am1.URL)
		for k := range want {
			if !got[k] {
				return false
			}
		}
		return true
	})
	delivered := time.Since(back)
	lost := 0
	for k := range want {
		if !got[k] {
			lost++
			t.Errorf("alert %s never reached the Alertmanager that was down, 30 s after it returned", k)
		}
	}
	if ok && delivered > faultMinutes+2*time.Second {
		t.Errorf("alerts reached the Alertmanager that returned %s later; want within a resend delay (%s)", delivered, faultMinutes)
	}

	// Nothing accepted was dropped: bottlenecks, rules, workflows.
	after := activeBottlenecks(t, a.url, "alice")
	for k, b := range before {
		if n, ok := after[k]; !ok || !n.ActiveAt.Equal(b.ActiveAt) {
			t.Errorf("bottleneck %s changed during the Alertmanager outage: %+v", k, n)
		}
	}
	_, rulesAfter := get(t, a.url+"/api/v1/rules")
	if n, m := strings.Count(rulesBefore, `"name":`), strings.Count(rulesAfter, `"name":`); n != m {
		t.Errorf("rules before %d, after %d", n, m)
	}
	if s := getWorkflow(t, a.url, id).State; s == "" {
		t.Errorf("the workflow approved during the outage is gone")
	}
	figure(t, "alertmanager outage", "1 of 2 Alertmanagers down 10 min (10 resend delays of %s): alerts lost %d/%d, delivered %.2f s after it returned (1 resend delay = %.2f s), failed deliveries counted (errors %g, dropped %g, queue bound %g), the other received all, approval through the API worked and the workflow reached %s %.2f s later",
		faultMinutes, lost, len(want), delivered.Seconds(), faultMinutes.Seconds(), errorsDuring, dropped, capacity, state, moved.Seconds())
}
