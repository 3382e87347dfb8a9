package main

import (
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// acceptedState is what the agent has accepted and must keep through bad
// input: its rules, the active bottlenecks, the workflows, and the signal
// history each instance had.
type acceptedState struct {
	rules       []string
	bottlenecks []string        // rule/instance of each active bottleneck
	workflows   []string        // id/state of each workflow
	history     map[string]int  // instance → points of history up to since
	since       time.Time       // the history counted is up to here
	instances   map[string]bool // instance → listed by the last collection
}

// readAccepted reads the accepted state, with the history of instances
// up to since (instances not in the last collection have none to read).
func readAccepted(t *testing.T, url string, since time.Time, instances []string) acceptedState {
	t.Helper()
	s := acceptedState{history: map[string]int{}, instances: map[string]bool{}, since: since}
	var rules struct {
		Data struct {
			Groups []struct {
				File  string
				Rules []struct{ Name string }
			}
		}
	}
	apiGet(t, url+"/api/v1/rules", &rules)
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			s.rules = append(s.rules, g.File+"/"+r.Name)
		}
	}
	var bs struct {
		Data struct {
			Bottlenecks []struct{ Rule, Instance, State string }
		}
	}
	apiGet(t, url+"/api/v1/bottlenecks", &bs)
	for _, b := range bs.Data.Bottlenecks {
		s.bottlenecks = append(s.bottlenecks, b.Rule+"/"+b.Instance)
	}
	var ws struct {
		Data struct {
			Workflows []struct{ ID, State string }
		}
	}
	apiGet(t, url+"/api/v1/workflows", &ws)
	for _, w := range ws.Data.Workflows {
		s.workflows = append(s.workflows, w.ID+"/"+w.State)
	}
	var is struct {
		Data struct {
			Instances []struct{ Instance string }
		}
	}
	apiGet(t, url+"/api/v1/instances", &is)
	for _, i := range is.Data.Instances {
		s.instances[i.Instance] = true
	}
	for _, inst := range instances {
		if !s.instances[inst] {
			continue
		}
		var d struct {
			Data struct {
				History []struct {
					Values [][2]json.Number
				}
			}
		}
		apiGet(t, fmt.Sprintf("%s/api/v1/instances/%s?start=%d&end=%d&step=1", url, inst, since.Add(-time.Minute).Unix(), since.Unix()), &d)
		for _, h := range d.Data.History {
			s.history[inst] += len(h.Values)
		}
	}
	slices.Sort(s.rules)
	slices.Sort(s.bottlenecks)
	slices.Sort(s.workflows)
	return s
}

// apiGet decodes the answer of an authenticated GET into v.
func apiGet(t *testing.T, url string, v any) {
	t.Helper()
	code, body := do(t, http.MethodGet, url, "alice", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
}

// lost lists what of was is missing from now, sparing the instances in
// down (whose collection fails on purpose, so they are not listed and
// their bottlenecks may end).
func (was acceptedState) lost(now acceptedState, down ...string) []string {
	var out []string
	missing := func(what string, from, in []string) {
		for _, x := range from {
			if !slices.Contains(in, x) && !slices.ContainsFunc(down, func(d string) bool { return strings.HasSuffix(x, "/"+d) }) {
				out = append(out, what+" "+x)
			}
		}
	}
	missing("rule", was.rules, now.rules)
	missing("bottleneck", was.bottlenecks, now.bottlenecks)
	missing("workflow", was.workflows, now.workflows)
	for inst := range was.instances {
		if !now.instances[inst] && !slices.Contains(down, inst) {
			out = append(out, "instance "+inst)
		}
	}
	for inst, n := range was.history {
		if now.history[inst] < n && !slices.Contains(down, inst) {
			out = append(out, fmt.Sprintf("history of %s: %d of %d points", inst, now.history[inst], n))
		}
	}
	return out
}

// TestFaultBadInput feeds a running agent, which has rules, active
// bottlenecks, a workflow awaiting approval and signal history, every kind
// of bad input: configuration reloads that fail (not YAML, a bad rule
// file, a bad target URL), a target that does not answer, a model server
// whose exposition turns to garbage, and bad API requests. Each is
// refused or contained, and after each nothing already accepted is gone.
func TestFaultBadInput(t *testing.T) {
	faultSuite(t)
	const evaluationInterval = 250 * time.Millisecond // rolloutFiles'
	const secret = "bad-input-secret"
	sim := startSimFleet(t, secret, 2)
	garbage := new(atomic.Bool)
	upstream := "http://" + sim.addrs[1] + "/metrics"
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if garbage.Load() {
			fmt.Fprint(w, "vllm:num_requests_running{ 12\n\x00\xff not an exposition }}}\n")
			return
		}
		resp, err := http.Get(upstream)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(flaky.Close)
	flakyInst := strings.TrimPrefix(flaky.URL, "http://")

	cfg, webCfg := rolloutFiles(t, sim, sim.webhook.URL, secret, "", "warmup: 1s\n  window: 5s", "alice", "bob", "mallory")
	cfg = strings.Replace(cfg, "  targets:\n", "  targets:\n    - url: "+flaky.URL+"/metrics\n", 1)
	a := startAgent(t, cfg, withLifecycle, func(f *daemonFlags) { f.webConfigFile = webCfg })
	instances := []string{sim.addrs[0], sim.addrs[1], flakyInst}
	waitFor(t, "a bottleneck on each instance", func() bool {
		_, body := do(t, http.MethodGet, a.url+"/api/v1/bottlenecks", "alice", "")
		return strings.Count(body, `"rule":"KVTest"`) == len(instances)
	})
	waitFor(t, "a recommendation", func() bool {
		code, body := do(t, http.MethodGet, a.url+"/api/v1/recommendations?id=raise_gpu_memory_utilization", "alice", "")
		return code == http.StatusOK && strings.Contains(body, `"proposed"`)
	})
	if code, body := do(t, http.MethodPost, a.url+"/api/v1/workflows", "alice", fmt.Sprintf(`{"recommendation":"raise_gpu_memory_utilization","instance":%q}`, sim.addrs[0])); code != http.StatusOK {
		t.Fatalf("create = %d %s", code, body)
	}
	var before acceptedState
	waitFor(t, "a few seconds of every instance's signal history", func() bool {
		before = readAccepted(t, a.url, time.Now(), instances)
		for _, inst := range instances {
			if before.history[inst] < 3 {
				return false
			}
		}
		return true
	})
	since := before.since
	if len(before.rules) == 0 || len(before.bottlenecks) != len(instances) || len(before.workflows) != 1 {
		t.Fatalf("the agent had not accepted enough to lose: %+v", before)
	}

	ruleFile := regexp.MustCompile(`rule_files: \[([^\]]+)\]`).FindStringSubmatch(cfg)[1]
	goodRules, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(config string) (int, string) {
		t.Helper()
		if err := os.WriteFile(a.config, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		return do(t, http.MethodPost, a.url+"/-/reload", "alice", "")
	}
	inputs, lostTotal := 0, 0
	check := func(what string, down ...string) {
		t.Helper()
		inputs++
		// A loss may show only at the next collection or evaluation.
		time.Sleep(2 * evaluationInterval)
		now := readAccepted(t, a.url, since, instances)
		if l := before.lost(now, down...); len(l) > 0 {
			lostTotal += len(l)
			t.Errorf("after %s the agent lost: %s", what, strings.Join(l, "; "))
		}
	}
	refusedReload := func(what, config, wantInError string) {
		t.Helper()
		code, body := reload(config)
		if code != http.StatusInternalServerError || !strings.Contains(body, wantInError) {
			t.Errorf("reload with %s = %d %q, want 500 naming %q", what, code, body, wantInError)
		}
		check("a reload with " + what)
	}

	refusedReload("a file that is not YAML", "source: [\n", "perfagent.yml")
	refusedReload("a bad target URL", strings.Replace(cfg, "url: "+flaky.URL, "url: ftp://"+flakyInst, 1), "source.targets[0].url")
	if err := os.WriteFile(ruleFile, []byte("groups:\n  - name: test\n    rules:\n      - alert: KVTest\n        expr: llm_kv_cache_usage_ratio >=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	refusedReload("a rule file whose PromQL does not parse", cfg, filepath.Base(ruleFile))
	if err := os.WriteFile(ruleFile, goodRules, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(cfg); code != http.StatusOK {
		t.Fatalf("reload with the good file again = %d %s", code, body)
	}
	check("the good configuration again")

	// A target nothing answers on is accepted: it is listed as down and
	// changes nothing of the others.
	nobody := testutil.FreeAddr(t)
	if code, body := reload(strings.Replace(cfg, "  targets:\n", "  targets:\n    - url: http://"+nobody+"/metrics\n", 1)); code != http.StatusOK {
		t.Fatalf("reload with a target that does not answer = %d %s", code, body)
	}
	waitFor(t, "the silent target listed as down", func() bool {
		_, down := do(t, http.MethodGet, a.url+"/api/v1/targets?health=down&limit=0", "alice", "")
		return strings.Contains(down, nobody)
	})
	check("a target that does not answer")
	if code, body := reload(cfg); code != http.StatusOK {
		t.Fatalf("reload without the silent target = %d %s", code, body)
	}

	// A model server whose page turns to garbage fails its scrapes; the
	// history it had stays, and the others are untouched.
	garbage.Store(true)
	waitFor(t, "the garbage target listed as down", func() bool {
		_, down := do(t, http.MethodGet, a.url+"/api/v1/targets?health=down&limit=0", "alice", "")
		return strings.Contains(down, `"health":"down"`)
	})
	check("an exposition that is garbage", flakyInst)
	garbage.Store(false)
	waitFor(t, "the garbage target's bottleneck again", func() bool {
		_, body := do(t, http.MethodGet, a.url+"/api/v1/bottlenecks?instance="+flakyInst, "alice", "")
		return strings.Contains(body, `"rule":"KVTest"`)
	})
	check("the exposition mended")

	wf := strings.Split(before.workflows[0], "/")[0]
	for _, req := range []struct {
		what, method, path, user, body string
		want                           int
	}{
		{"a body that is not JSON", http.MethodPost, "/api/v1/workflows", "alice", `{"recommendation":`, http.StatusBadRequest},
		{"an unknown recommendation", http.MethodPost, "/api/v1/workflows", "alice", `{"recommendation":"no_such_thing","instance":"x"}`, http.StatusNotFound},
		{"an unknown field", http.MethodPost, "/api/v1/workflows", "alice", `{"recommendation":"raise_gpu_memory_utilization","instanze":"x"}`, http.StatusBadRequest},
		{"an approval with the wrong hash", http.MethodPost, "/api/v1/workflows/" + wf + "/approve", "bob", `{"proposal_hash":"0000"}`, http.StatusConflict},
		{"an approval by a non-approver", http.MethodPost, "/api/v1/workflows/" + wf + "/approve", "mallory", `{"proposal_hash":"0000"}`, http.StatusForbidden},
		{"a rejection without a password", http.MethodPost, "/api/v1/workflows/" + wf + "/reject", "", `{}`, http.StatusUnauthorized},
		{"a detection at a time that is no time", http.MethodPost, "/api/v1/analysis/detect-bottlenecks", "alice", `{"time":"yesterday"}`, http.StatusBadRequest},
		{"a body of 8 MiB", http.MethodPost, "/api/v1/workflows", "alice", `{"recommendation":"` + strings.Repeat("x", 8<<20) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		code, body := do(t, req.method, a.url+req.path, req.user, req.body)
		if code != req.want {
			t.Errorf("%s: %s %s = %d, want %d: %.200s", req.what, req.method, req.path, code, req.want, body)
		}
		check(req.what)
	}
	figure(t, "bad input", "%d checks after bad input (3 refused reloads, a silent target, a garbage exposition, 8 bad requests): accepted state lost %d, of rules %d, bottlenecks %d, workflows %d, history points %d",
		inputs, lostTotal, len(before.rules), len(before.bottlenecks), len(before.workflows), sumValues(before.history))
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
