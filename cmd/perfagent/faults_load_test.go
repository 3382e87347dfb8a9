package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// loadAgent runs the agent as a child process (so that its goroutines and
// heap are its own) over the fleet, with basic auth for alice, bob and
// mallory (password "pw"), bob the approver, a rule that asks for
// raise_gpu_memory_utilization on every instance, a cycle every
// interval (the validation window the 20 intervals it needs at least),
// and logs at level.
func loadAgent(t *testing.T, sim *simFleet, secret, level string, interval time.Duration) (p *agentProcess, base string, exited <-chan struct{}) {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	ruleFile := filepath.Join(dir, "kv.yml")
	cfgFile := filepath.Join(dir, "perfagent.yml")
	var targets strings.Builder
	for _, a := range sim.addrs {
		fmt.Fprintf(&targets, "    - url: http://%s/metrics\n", a)
	}
	files := map[string]string{
		webCfg:   fmt.Sprintf("basic_auth_users:\n  alice: %[1]s\n  bob: %[1]s\n  mallory: %[1]s\n", hash),
		ruleFile: kvRule,
		cfgFile: fmt.Sprintf("global: {scrape_interval: %[1]s, scrape_timeout: %[2]s, evaluation_interval: %[1]s}\ncollector: {rate_window: %[3]s}\nsource:\n  targets:\n", interval, interval*4/5, 4*interval) + targets.String() + fmt.Sprintf(`rules: {rule_files: [%s]}
recommender:
  models:
    - {name: meta-llama/Llama-3.1-8B-Instruct, parameters: 8.03e9, layers: 32, kv_heads: 8, head_dim: 128, dtype_bytes: 2, gpu_memory_bytes: 85899345920}
workflow:
  approvers: [bob]
  webhook: {url: %s, secret: %s}
  warmup: 5s
  window: %s
`, ruleFile, sim.webhook.URL, secret, 20*interval),
	}
	for name, body := range files {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := testutil.FreeAddr(t)
	p = &agentProcess{t: t, log: &testutil.SyncBuffer{}, args: []string{
		"--config.file=" + cfgFile, "--web.listen-address=" + addr, "--web.config.file=" + webCfg,
		"--storage.path=" + filepath.Join(dir, "data"), "--log.level=" + level,
	}}
	p.start()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// SIGTERM first: a clean stop is part of what is tested.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the agent did not stop within 30 s of SIGTERM")
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", p.log.String())
		}
	})
	return p, "http://" + addr, done
}

// loadClient makes the load's requests: basic auth, generous timeouts (a
// slow answer is measured, not an error) and enough idle connections to
// keep one per client.
type loadClient struct {
	base string
	http *http.Client
}

func newLoadClient(base string, clients int) *loadClient {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxIdleConns: clients, IdleConnTimeout: 30 * time.Second}
	return &loadClient{base: base, http: &http.Client{Transport: tr, Timeout: 3 * time.Minute}}
}

// do sends one request as user (password "pw") and returns the status and
// body; err is a transport error or a short read.
func (c *loadClient) do(method, path, user, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if user != "" {
		req.SetBasicAuth(user, "pw")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// selfMetrics reads the agent's goroutines, and the heap that was live
// at its last garbage collection, from its own /metrics. The goroutines
// are the fewest of samples a second apart, since the collection of a
// thousand targets and the reads themselves come and go. The live heap is
// the collector's goal divided by 1+GOGC/100 (the goal is set from the
// marked heap at the end of each collection): the heap in use would count
// garbage not yet collected, whose amount depends on when the collector
// last ran. It waits for two collections after the first sample, for up
// to three minutes (the runtime forces one every two): objects kept in
// sync.Pools survive one.
func (c *loadClient) selfMetrics(t *testing.T, samples int) (goroutines, liveHeap float64) {
	t.Helper()
	goroutines = math.Inf(1)
	re := regexp.MustCompile(`(?m)^(go_goroutines|go_memstats_next_gc_bytes|go_gc_duration_seconds_count|go_gc_gogc_percent) (\S+)$`)
	deadline := time.Now().Add(3 * time.Minute)
	firstGC := -1.0
	for i := 0; ; i++ {
		code, body, err := c.do(http.MethodGet, "/metrics", "alice", "")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /metrics = %d %v", code, err)
		}
		v := map[string]float64{"go_gc_gogc_percent": 100}
		for _, m := range re.FindAllSubmatch(body, -1) {
			f, err := strconv.ParseFloat(string(m[2]), 64)
			if err != nil {
				t.Fatal(err)
			}
			v[string(m[1])] = f
		}
		if len(v) != 4 {
			t.Fatalf("/metrics lacks go_goroutines, go_memstats_next_gc_bytes or go_gc_duration_seconds_count: %v", v)
		}
		goroutines = min(goroutines, v["go_goroutines"])
		if firstGC < 0 {
			firstGC = v["go_gc_duration_seconds_count"]
		}
		if i+1 >= samples && v["go_gc_duration_seconds_count"] >= firstGC+2 {
			return goroutines, v["go_memstats_next_gc_bytes"] / (1 + v["go_gc_gogc_percent"]/100)
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent did not collect garbage twice in 3 minutes")
		}
		time.Sleep(time.Second)
	}
}

// loadStats gathers latencies and errors of the load's requests.
type loadStats struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration // group → latencies
	errors    map[string]int             // first 200 bytes of an error → count
	nErrors   int
	// Answers 404 or 422 about one instance, by instance: right if that
	// instance's scrape failed in the cycle they were answered from (it is
	// then gone from the snapshot), which excuse decides after the run.
	absent map[string][]string
}

func newLoadStats() *loadStats {
	return &loadStats{latencies: map[string][]time.Duration{}, errors: map[string]int{}, absent: map[string][]string{}}
}

// record records a request of group that took d; err is its transport
// error or wrong answer, code its status, instance the instance the
// request is about ("" for none).
func (s *loadStats) record(group string, d time.Duration, err error, code int, instance string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies[group] = append(s.latencies[group], d)
	switch {
	case err == nil:
	case instance != "" && (code == http.StatusNotFound || code == http.StatusUnprocessableEntity):
		s.absent[instance] = append(s.absent[instance], err.Error())
	default:
		s.addError(err.Error())
	}
}

func (s *loadStats) addError(msg string) {
	s.nErrors++
	if len(msg) > 200 {
		msg = msg[:200]
	}
	s.errors[msg]++
}

// excuse counts the answers that said an instance was absent as right
// when the agent's own up series of that instance was 0 within the last
// window, and as errors otherwise. It returns the answers excused.
func (s *loadStats) excuse(t *testing.T, c *loadClient, window time.Duration) int {
	t.Helper()
	excused := 0
	for instance, msgs := range s.absent {
		expr := fmt.Sprintf("min_over_time(up{instance=%q}[%ds])", instance, int(window.Seconds()))
		code, body, err := c.do(http.MethodGet, "/api/v1/query?query="+url.QueryEscape(expr), "alice", "")
		var res struct {
			Data struct {
				Result []struct{ Value [2]any }
			}
		}
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &res) != nil {
			t.Fatalf("GET /api/v1/query %s = %d %v %.200s", expr, code, err, body)
		}
		if len(res.Data.Result) == 1 && res.Data.Result[0].Value[1] == "0" {
			excused += len(msgs)
			continue
		}
		for _, msg := range msgs {
			s.addError(msg + " (its scrapes all succeeded)")
		}
	}
	return excused
}

// reportErrors fails t with each distinct error and its count, the most
// frequent first, one line each so that a summary of the log keeps them.
func (s *loadStats) reportErrors(t *testing.T) {
	t.Helper()
	msgs := slices.Collect(maps.Keys(s.errors))
	slices.SortFunc(msgs, func(a, b string) int { return cmp.Or(s.errors[b]-s.errors[a], strings.Compare(a, b)) })
	for i, msg := range msgs {
		if i == 10 {
			t.Errorf("… and %d other kinds of error", len(msgs)-i)
			break
		}
		t.Errorf("%d× %s", s.errors[msg], strings.ReplaceAll(msg, "\n", " "))
	}
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

// ms formats a latency for the figure line.
func ms(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// TestFaultAPILoad: 200 concurrent clients for 60 s against the read and
// workflow endpoints of an agent scraping 1000 simulated vLLM servers.
// Every answer must be the expected one (or, about one instance, that it
// is absent, when the agent's own up series shows a failed scrape of it),
// and the agent's goroutines and heap must come back to where they were.
// PERFAGENT_LOAD_DURATION shortens the run for local iteration.
func TestFaultAPILoad(t *testing.T) {
	faultSuite(t)
	const (
		instances = 1000
		clients   = 200
		// Clients that create and decide workflows; the others read.
		workflowClients = 10
		// Workflows each of them creates, then decides (one in four
		// approved, the others rejected).
		cycles = 3
		secret = "load-secret"
	)
	duration := 60 * time.Second
	if s := os.Getenv("PERFAGENT_LOAD_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("PERFAGENT_LOAD_DURATION: %v", err)
		}
		duration = d
	}
	// The fleet advances once a second, not every 50 ms as the small
	// fleets do: a thousand servers would otherwise take the machine's
	// cores from the agent under test.
	sim := vllmFleet(t, secret, instances, 2, time.Second)
	_, base, exited := loadAgent(t, sim, secret, "warn", 5*time.Second)
	c := newLoadClient(base, clients)

	// Wait for every instance and for the recommendations the workflow
	// clients will act on.
	var recommended []string
	deadline := time.Now().Add(2 * time.Minute)
	for ; ; time.Sleep(time.Second) {
		select {
		case <-exited:
			t.Fatal("the agent exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes the agent has fewer than %d instances or %d recommendations (%d)", instances, workflowClients*cycles, len(recommended))
		}
		code, body, err := c.do(http.MethodGet, "/api/v1/instances?limit=0", "alice", "")
		var inst struct {
			Data struct{ Instances []json.RawMessage }
		}
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &inst) != nil || len(inst.Data.Instances) < instances {
			continue
		}
		code, body, err = c.do(http.MethodGet, "/api/v1/recommendations?id=raise_gpu_memory_utilization&limit=0", "alice", "")
		var recs struct {
			Data struct{ Recommendations []struct{ Instance string } }
		}
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &recs) != nil {
			continue
		}
		recommended = recommended[:0]
		for _, r := range recs.Data.Recommendations {
			recommended = append(recommended, r.Instance)
		}
		if len(recommended) >= workflowClients*cycles {
			break
		}
	}
	slices.Sort(recommended)

	reads := []string{
		"/api/v1/health", "/api/v1/instances", "/api/v1/instances/" + sim.addrs[0], "/api/v1/bottlenecks",
		"/api/v1/recommendations", "/api/v1/recommendations?id=raise_gpu_memory_utilization", "/api/v1/signals",
		"/api/v1/rules", "/api/v1/workflows", "/metrics", "/", "/instances/" + sim.addrs[1],
	}
	// Every read once before measuring, so that what is built once and
	// kept (encoded documents, templates) counts as before.
	for _, path := range reads {
		if code, body, err := c.do(http.MethodGet, path, "alice", ""); err != nil || code != http.StatusOK {
			t.Fatalf("GET %s = %d %v %.200s", path, code, err, body)
		}
	}
	c.http.CloseIdleConnections()
	// The heap grows by itself for a while after the start (the signal
	// store's head, rate windows filling): an idle period as long as the
	// run shows how much, and the run is measured from its end.
	_, heapStart := c.selfMetrics(t, 5)
	time.Sleep(duration)
	goroutinesBefore, heapBefore := c.selfMetrics(t, 5)

	stats := newLoadStats()
	// about names the instance a path is about, if any.
	about := map[string]string{"/api/v1/instances/" + sim.addrs[0]: sim.addrs[0], "/instances/" + sim.addrs[1]: sim.addrs[1]}
	// call makes one request and records it; an answer other than want is
	// an error, unless it says that instance is absent and is right.
	call := func(group, method, path, user, body string, want int, instance string) ([]byte, bool) {
		start := time.Now()
		code, b, err := c.do(method, path, user, body)
		if err == nil && code != want {
			err = fmt.Errorf("%s %s as %s = %d, want %d: %.200s", method, path, user, code, want, b)
		} else if err != nil {
			err = fmt.Errorf("%s %s: %w", method, path, err)
		}
		stats.record(group, time.Since(start), err, code, instance)
		return b, err == nil
	}
	var (
		wfMu sync.Mutex
		wfs  []string
	)
	// workflows creates, reads and decides cycles workflows, each on an
	// instance of its own, then reads them until the end.
	workflows := func(ctx context.Context, client int) {
		var mine []string
		// All cycles run, however short the run: the workflows are part
		// of what is measured.
		for cycle := range cycles {
			inst := recommended[client*cycles+cycle]
			b, ok := call("workflow", http.MethodPost, "/api/v1/workflows", "alice",
				fmt.Sprintf(`{"recommendation":"raise_gpu_memory_utilization","instance":%q,"instances":[%q]}`, inst, inst), http.StatusOK, inst)
			if !ok {
				continue
			}
			var w struct {
				Data struct {
					ID           string `json:"id"`
					ProposalHash string `json:"proposal_hash"`
				}
			}
			if err := json.Unmarshal(b, &w); err != nil {
				stats.record("workflow", 0, fmt.Errorf("created workflow: %w", err), 0, "")
				continue
			}
			mine = append(mine, w.Data.ID)
			wfMu.Lock()
			wfs = append(wfs, w.Data.ID)
			wfMu.Unlock()
			call("workflow", http.MethodGet, "/api/v1/workflows/"+w.Data.ID, "alice", "", http.StatusOK, "")
			decision := "reject"
			if (client*cycles+cycle)%4 == 0 {
				decision = "approve"
			}
			call("workflow", http.MethodPost, "/api/v1/workflows/"+w.Data.ID+"/"+decision, "bob", fmt.Sprintf(`{"proposal_hash":%q,"comment":"load"}`, w.Data.ProposalHash), http.StatusOK, "")
		}
		for i := 0; ctx.Err() == nil; i++ {
			if len(mine) > 0 && i%2 == 0 {
				call("workflow", http.MethodGet, "/api/v1/workflows/"+mine[i%len(mine)], "mallory", "", http.StatusOK, "")
			} else {
				call("workflow", http.MethodGet, "/api/v1/workflows?active=true", "alice", "", http.StatusOK, "")
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for client := range clients {
		wg.Go(func() {
			if client < workflowClients {
				workflows(ctx, client)
				return
			}
			for i := client; ctx.Err() == nil; i++ {
				path := reads[i%len(reads)]
				call("read", http.MethodGet, path, "alice", "", http.StatusOK, about[path])
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Under this load some scrapes of the fleet, served from this
	// process, outlast their timeout. Asked at once, while the agent
	// still holds the scraped samples of the whole run.
	excused := stats.excuse(t, c, elapsed+30*time.Second)

	// Let connections close and in-flight work end, then measure again.
	c.http.CloseIdleConnections()
	ended := time.Now()
	time.Sleep(5 * time.Second)
	goroutinesAfter, heapAfter := c.selfMetrics(t, 5)
	t.Logf("measured %s after the load", time.Since(ended).Round(time.Second))

	var all []time.Duration
	for _, group := range []string{"read", "workflow"} {
		ds := stats.latencies[group]
		all = append(all, ds...)
		t.Logf("%s: %d requests, p50 %s, p99 %s, max %s", group, len(ds), ms(quantile(ds, .5)), ms(quantile(ds, .99)), ms(quantile(ds, 1)))
	}
	const mb = 1 << 20
	figure(t, "API load", "%d clients, %s, %d instances: %d requests, %.0f req/s, p50 %s, p99 %s (reads p99 %s, workflows p99 %s), errors %d, answers that an instance whose scrape had failed was absent %d, workflows created %d of %d, goroutines %.0f→%.0f, live heap %.0f→%.0f MB (%.0f MB %s before, idle)",
		clients, duration, instances, len(all), float64(len(all))/elapsed.Seconds(), ms(quantile(all, .5)), ms(quantile(all, .99)),
		ms(quantile(stats.latencies["read"], .99)), ms(quantile(stats.latencies["workflow"], .99)),
		stats.nErrors, excused, len(wfs), workflowClients*cycles, goroutinesBefore, goroutinesAfter, heapBefore/mb, heapAfter/mb, heapStart/mb, duration)
	stats.reportErrors(t)
	// A workflow not created is an error above or an excused answer.
	if len(wfs) == 0 {
		t.Error("no workflow was created")
	}
	// Slack for the workflows still running (approved ones wait out their
	// warm-up and window) and the scrape loops' moments.
	if goroutinesAfter > goroutinesBefore+20 {
		t.Errorf("goroutines grew from %.0f to %.0f over the run", goroutinesBefore, goroutinesAfter)
	}
	// The live heap may be larger by what the run added (workflows, their
	// events, the request duration histogram's series), never by what the
	// requests made and dropped.
	// Two idle measurements a run's length apart differ by up to about
	// 100 MB at this size (the estimate depends on what was allocated
	// while the collector marked), so the bound is over the larger.
	if heapAfter > max(heapStart, heapBefore)*1.25+32*mb {
		t.Errorf("heap in use grew from %.0f to %.0f MB over the run", heapBefore/mb, heapAfter/mb)
	}
}
