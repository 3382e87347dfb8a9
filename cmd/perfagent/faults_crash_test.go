package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/internal/testutil"
	"github.com/optiinfra/perfagent/simulator"
	"github.com/optiinfra/perfagent/workflow"
)

// Where a crash run SIGKILLs the agent.
const (
	killBeforeApply = "before apply"
	killAfterApply  = "after apply"
	killValidation  = "during validation"
	killRollback    = "during rollback"
	killStoreWrite  = "during a store write"
)

var killPoints = []string{killBeforeApply, killAfterApply, killValidation, killRollback, killStoreWrite}

// crashPlan is one run of TestFaultCrashDuringRollout, drawn from the seed.
type crashPlan struct {
	point string
	// regress makes the change also cut the canary's concurrency, so that
	// validation rolls it back; every rollback run regresses.
	regress bool
	// answered: killed after the receiver answered rather than after it
	// made the change and before it answered (after apply, rollback); for
	// before apply and rollback false means before the change was made.
	answered bool
	// delay is how long after the point is reached the kill comes
	// (validation: into the warm-up and window; store write: before the
	// watch for a write is armed).
	delay time.Duration
}

func (p crashPlan) String() string {
	s := p.point
	switch p.point {
	case killAfterApply:
		if p.answered {
			s += ", after the answer"
		} else {
			s += ", before the answer"
		}
	case killRollback:
		if p.answered {
			s += ", after the answer"
		} else {
			s += ", before the change"
		}
	case killValidation, killStoreWrite:
		s += fmt.Sprintf(", %s in", p.delay.Round(time.Millisecond))
	}
	if p.regress && p.point != killRollback {
		s += ", regressing"
	}
	return s
}

// crashPlans deals n runs evenly over the kill points, in an order and
// with details drawn from r.
func crashPlans(r *rand.Rand, n int) []crashPlan {
	plans := make([]crashPlan, n)
	for i := range plans {
		p := crashPlan{point: killPoints[i%len(killPoints)], answered: r.IntN(2) == 0, regress: r.IntN(4) == 0}
		switch p.point {
		case killRollback:
			p.regress = true
		case killValidation:
			// The canary's warm-up (4 s) and window (6 s).
			p.delay = time.Duration(r.Int64N(int64(10 * time.Second)))
		case killStoreWrite:
			// Up to the canary's verdict, the last write of a run that
			// rolls back there.
			p.delay = time.Duration(r.Int64N(int64(9 * time.Second)))
		}
		plans[i] = p
	}
	r.Shuffle(n, func(i, j int) { plans[i], plans[j] = plans[j], plans[i] })
	return plans
}

// crashResult is what a crash run measured.
type crashResult struct {
	plan          crashPlan
	killed        bool
	state         string
	doubleApplies int
	lostDecisions int
	unlisted      int
}

// TestFaultCrashDuringRollout SIGKILLs the agent, a child process, at a
// point of a rollout drawn from a seed, 20 times, each over its own
// simulated fleet, and restarts it on the same storage. Every workflow must
// finish; no instance may be changed twice by one operation, no approval
// may be lost, and every instance whose setting differs from its original
// must be listed by the workflow as changed. PERFAGENT_FAULTS_SEED replays
// a seed; PERFAGENT_FAULTS_CRASH_RUN runs only the run with that number.
func TestFaultCrashDuringRollout(t *testing.T) {
	faultSuite(t)
	seed := time.Now().UnixNano()
	if s := os.Getenv("PERFAGENT_FAULTS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("PERFAGENT_FAULTS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d; PERFAGENT_FAULTS_SEED=%d replays it", seed, seed)
	plans := crashPlans(rand.New(rand.NewPCG(uint64(seed), 0)), 20)
	only := -1
	if s := os.Getenv("PERFAGENT_FAULTS_CRASH_RUN"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > len(plans) {
			t.Fatalf("PERFAGENT_FAULTS_CRASH_RUN=%q is no run number 1-%d", s, len(plans))
		}
		only = n - 1
	}
	results := make([]crashResult, len(plans))
	t.Run("runs", func(t *testing.T) {
		for i, p := range plans {
			if only >= 0 && i != only {
				continue
			}
			t.Run(fmt.Sprintf("%02d", i+1), func(t *testing.T) {
				t.Parallel()
				t.Logf("run %d: SIGKILL %s", i+1, p)
				results[i] = crashRun(t, p)
			})
		}
	})
	var (
		kills, succeeded, rolledBack, paused, doubles, lost, unlisted int
		perPoint                                                      = map[string]int{}
	)
	for _, r := range results {
		if r.plan.point == "" {
			continue // not run
		}
		if r.killed {
			kills++
			perPoint[r.plan.point]++
		}
		switch r.state {
		case "succeeded":
			succeeded++
		case "rolled_back":
			rolledBack++
		case "paused":
			paused++
		}
		doubles += r.doubleApplies
		lost += r.lostDecisions
		unlisted += r.unlisted
	}
	var points []string
	for _, p := range killPoints {
		points = append(points, fmt.Sprintf("%d %s", perPoint[p], p))
	}
	runs := len(plans)
	if only >= 0 {
		runs = 1
	}
	figure(t, "crash safety", "%d SIGKILLs (%s): double applies %d, lost decisions %d, unlisted changes %d, %d of %d workflows finished (%d succeeded, %d rolled back, %d paused on an inconclusive verdict)",
		kills, strings.Join(points, ", "), doubles, lost, unlisted, succeeded+rolledBack+paused, runs, succeeded, rolledBack, paused)
}

// crashReceiver is the simulator's change webhook, counting the changes
// each request made and, when armed, SIGKILLing the agent on its way.
type crashReceiver struct {
	fleet   *simulator.Fleet
	next    http.Handler
	regress bool
	// kill is called in each phase of a change request: "before" the
	// change is made, once it is "changed" but not answered, and once
	// "answered"; true before means the agent was killed there and the
	// request is answered 503 without the change.
	kill func(c simulator.ChangeRequest, phase string) bool

	mu sync.Mutex
	// changed counts, per instance and operation, the requests that
	// changed the instance's setting.
	changed map[string]int
	// keys holds, per instance and operation, the idempotency keys that
	// reached the receiver.
	keys map[string][]string
}

func (h *crashReceiver) setting(instance string) float64 {
	for _, s := range h.fleet.Servers() {
		if s.Listen() == instance {
			return s.State().Settings.GPUMemoryUtilization
		}
	}
	return -1
}

func (h *crashReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(strings.NewReader(string(body)))
	var c simulator.ChangeRequest
	_ = json.Unmarshal(body, &c)
	if c.Operation == "read" {
		h.next.ServeHTTP(w, req)
		return
	}
	if h.kill(c, "before") {
		http.Error(w, "the agent was killed before the change", http.StatusServiceUnavailable)
		return
	}
	before := h.setting(c.Instance)
	rec := httptest.NewRecorder()
	h.next.ServeHTTP(rec, req)
	after := h.setting(c.Instance)
	if h.regress {
		seqs := `{"max_num_seqs": 2}`
		if c.Operation == "rollback" {
			seqs = `{"max_num_seqs": 256}`
		}
		for _, s := range h.fleet.Servers() {
			if s.Listen() == c.Instance {
				_ = s.UpdateSettings([]byte(seqs))
			}
		}
	}
	h.mu.Lock()
	op := c.Instance + " " + c.Operation
	if after != before {
		h.changed[op]++
	}
	if !slices.Contains(h.keys[op], c.IdempotencyKey) {
		h.keys[op] = append(h.keys[op], c.IdempotencyKey)
	}
	h.mu.Unlock()
	h.kill(c, "changed")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	h.kill(c, "answered")
}

// crashFleet runs two simulated vLLM servers under a light load, so that
// the restart a change causes settles within a short warm-up (4 s; at
// startSimFleet's load most stages would regress).
func crashFleet(t *testing.T, secret string) *simFleet {
	t.Helper()
	return vllmFleet(t, secret, 2, 4, 50*time.Millisecond)
}

// crashWorkflow is the part of the API's workflow the checks read.
type crashWorkflow struct {
	State     string                    `json:"state"`
	Decisions []workflow.Decision       `json:"decisions"`
	Instances []workflow.InstanceChange `json:"instances"`
	Events    []struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"events"`
}

// crashRun runs one plan: a fleet, the agent as a child process, a
// workflow approved, the SIGKILL, a restart on the same storage, and the
// checks once the workflow is over.
func crashRun(t *testing.T, p crashPlan) crashResult {
	res := crashResult{plan: p}
	const secret = "crash-secret"
	sim := crashFleet(t, secret)
	recv := &crashReceiver{fleet: sim.fleet, next: sim.fleet.WebhookHandler([]byte(secret), time.Now), regress: p.regress,
		changed: map[string]int{}, keys: map[string][]string{}}
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)
	cfg, webCfg := rolloutFiles(t, sim, hook.URL, secret, "", "warmup: 4s\n  window: 6s", "alice", "bob")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "perfagent.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	data := filepath.Join(dir, "data")
	proc := &agentProcess{t: t, log: &testutil.SyncBuffer{}, args: []string{
		"--config.file", cfgFile, "--web.config.file", webCfg, "--web.listen-address", addr,
		"--storage.path", data, "--log.level", "info",
	}}
	proc.start()
	t.Cleanup(func() {
		proc.kill()
		if t.Failed() {
			t.Logf("agent log:\n%s", proc.log.String())
		}
	})
	url := "http://" + addr

	// One SIGKILL per run, from whichever goroutine reaches the point
	// first; kill reports whether this call was it.
	var (
		killOnce sync.Once
		killed   = make(chan struct{})
	)
	kill := func() (did bool) {
		killOnce.Do(func() {
			proc.kill()
			close(killed)
			did = true
		})
		return did
	}
	var armed atomic.Bool // from the approval on
	recv.kill = func(c simulator.ChangeRequest, phase string) bool {
		if !armed.Load() {
			return false
		}
		switch {
		case p.point == killBeforeApply && c.Operation == "apply" && phase == "before",
			p.point == killRollback && c.Operation == "rollback" && !p.answered && phase == "before":
			// The request dies with the agent; the restarted agent's
			// repeat is served.
			return kill()
		case p.point == killAfterApply && c.Operation == "apply" && phase == "changed" && !p.answered,
			p.point == killAfterApply && c.Operation == "apply" && phase == "answered" && p.answered,
			p.point == killRollback && c.Operation == "rollback" && phase == "answered" && p.answered:
			kill()
		}
		return false
	}

	waitWithin(t, "error ratios of both servers", 2*time.Minute, func() bool {
		_, body := do(t, "GET", url+"/api/v1/instances", "alice", "")
		return strings.Count(body, `"llm_request_error_ratio"`) == 2
	})
	signalsSince := time.Now()
	waitWithin(t, "a recommendation", 2*time.Minute, func() bool {
		code, body := do(t, "GET", url+"/api/v1/recommendations?id=raise_gpu_memory_utilization", "alice", "")
		return code == 200 && strings.Contains(body, `"proposed"`)
	})
	// The last stage is compared with the window before the change: let
	// history cover it after the first rate window (8 s).
	time.Sleep(time.Until(signalsSince.Add(8*time.Second + 6*time.Second + 2*time.Second)))
	id, hash, _ := proposeKVRaise(t, url, sim.addrs[0])
	get := func() (crashWorkflow, bool) {
		var got struct{ Data crashWorkflow }
		code, body := do(t, "GET", url+"/api/v1/workflows/"+id, "alice", "")
		return got.Data, code == 200 && json.Unmarshal([]byte(body), &got) == nil
	}
	armed.Store(true)
	if code, msg := do(t, "POST", url+"/api/v1/workflows/"+id+"/approve", "bob", fmt.Sprintf(`{"proposal_hash":%q}`, hash)); code != 200 {
		t.Fatalf("approve = %d %s", code, msg)
	}

	switch p.point {
	case killValidation:
		waitWithin(t, "the canary's warm-up", time.Minute, func() bool {
			got, _ := get()
			return got.State == "warmup" || got.State == "analysing"
		})
		time.Sleep(p.delay)
		kill()
	case killStoreWrite:
		time.Sleep(p.delay)
		go watchWrites(filepath.Join(data, "workflows", workflow.StoreFile), killed, func() { kill() })
	}
	final := func(s string) bool {
		switch s {
		case "succeeded", "rolled_back", "aborted", "needs_attention", "paused":
			return true
		}
		return false
	}
	// Wait for the kill, or for the workflow to end without the point
	// being reached (a run that was to roll back but was promoted).
	deadline := time.Now().Add(3 * time.Minute)
	for res.killed = false; !res.killed; {
		select {
		case <-killed:
			res.killed = true
			continue
		case <-time.After(100 * time.Millisecond):
		}
		if got, ok := get(); ok && final(got.State) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent was never killed %s", p.point)
		}
	}
	if !res.killed {
		got, _ := get()
		t.Errorf("the workflow ended %s without reaching the kill point (%s)", got.State, p.point)
		kill()
	} else {
		// What the dead agent left on disk must already hold the approval
		// and list every instance it changed.
		stored := storedAtCrash(t, filepath.Join(data, "workflows"), id)
		res.lostDecisions += lostDecisions(t, "at the crash", stored.Decisions)
		res.unlisted += unlisted(t, "at the crash", recv, sim.addrs, stored.Instances)
	}
	proc.start()

	var got crashWorkflow
	deadline = time.Now().Add(4 * time.Minute)
	for {
		var ok bool
		if got, ok = get(); ok && final(got.State) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart the workflow is still %s after 4m", got.State)
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.state = got.State
	switch {
	case got.State == "succeeded", got.State == "rolled_back":
	case got.State == "paused" && len(got.Events) > 0 && got.Events[len(got.Events)-1].Type == "analysis_inconclusive":
		// The validation could not judge the stage (the simulated traffic
		// moved between the sides) and the workflow waits for a person,
		// as it must; what it changed is checked below all the same.
	default:
		t.Errorf("after the restart the workflow ended %s, want succeeded, rolled_back, or paused on an inconclusive verdict", got.State)
	}
	res.lostDecisions += lostDecisions(t, "after the restart", got.Decisions)
	res.unlisted += unlisted(t, "after the restart", recv, sim.addrs, got.Instances)
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for op, n := range recv.changed {
		if n > 1 {
			res.doubleApplies += n - 1
			t.Errorf("%s changed the setting %d times", op, n)
		}
	}
	for op, keys := range recv.keys {
		// Retries of a failed rollback carry new keys by design; an apply
		// has exactly one.
		if strings.HasSuffix(op, " apply") && len(keys) > 1 {
			res.doubleApplies += len(keys) - 1
			t.Errorf("%s came with %d idempotency keys: %v", op, len(keys), keys)
		}
	}
	t.Logf("run ended %s; changes %v; keys %v", got.State, recv.changed, recv.keys)
	for _, ev := range got.Events {
		t.Logf("event %s: %s", ev.Type, ev.Reason)
	}
	return res
}

// storedAtCrash reads the workflow from the store a killed agent left.
func storedAtCrash(t *testing.T, dir, id string) workflow.Workflow {
	t.Helper()
	ws, err := workflow.OpenBoltStore(dir)
	if err != nil {
		t.Fatalf("the store the killed agent left: %v", err)
	}
	defer ws.Close()
	w, err := ws.Get(id)
	if err != nil {
		t.Fatalf("the store the killed agent left: %v", err)
	}
	return w
}

// lostDecisions is 1 when bob's approval is not among the decisions.
func lostDecisions(t *testing.T, when string, ds []workflow.Decision) int {
	t.Helper()
	for _, d := range ds {
		if d.User == "bob" && d.Approved {
			return 0
		}
	}
	t.Errorf("%s, bob's approval is lost: decisions %+v", when, ds)
	return 1
}

// unlisted counts the instances whose setting differs from the original
// (0.8) and that the workflow does not list as changed and not reverted.
func unlisted(t *testing.T, when string, recv *crashReceiver, addrs []string, listed []workflow.InstanceChange) int {
	t.Helper()
	n := 0
	for _, inst := range addrs {
		v := recv.setting(inst)
		if v == 0.8 {
			continue
		}
		if !slices.ContainsFunc(listed, func(ic workflow.InstanceChange) bool { return ic.Instance == inst && ic.RevertedAt.IsZero() }) {
			n++
			t.Errorf("%s, %s has gpu_memory_utilization %g, and the workflow does not list it as changed: %+v", when, inst, v, listed)
		}
	}
	return n
}

// watchWrites SIGKILLs (calls kill) as soon as the file's size or
// modification time changes: a write of the store is then under way or
// just done. It watches from outside, as the agent has no hook for it.
func watchWrites(path string, killed <-chan struct{}, kill func()) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	for {
		select {
		case <-killed:
			return
		default:
		}
		now, err := os.Stat(path)
		if err == nil && (now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime())) {
			kill()
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// lastCollection is the time of the agent's last collection, as its
// /api/v1/health gives it; false while it does not answer one.
func lastCollection(addr string) (time.Time, bool) {
	resp, err := http.Get("http://" + addr + "/api/v1/health")
	if err != nil {
		return time.Time{}, false
	}
	defer resp.Body.Close()
	var h struct {
		Data struct {
			LastCollection time.Time `json:"last_collection"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&h) != nil {
		return time.Time{}, false
	}
	return h.Data.LastCollection, !h.Data.LastCollection.IsZero()
}

// TestFaultCorruptStore damages the workflow store of an agent that ran
// (cut in half, as a torn copy would leave it, or overwritten with random
// bytes) and starts the agent on it: it must refuse, exit non-zero and
// say which file is damaged and what to do, and leave the file as it is.
func TestFaultCorruptStore(t *testing.T) {
	faultSuite(t)
	const secret = "store-secret"
	sim := startSimFleet(t, secret, 1)
	cfg, webCfg := rolloutFiles(t, sim, sim.webhook.URL, secret, "", "warmup: 1s\n  window: 6s", "alice", "bob")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "perfagent.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	var refused []string
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"torn", func(b []byte) []byte { return b[:len(b)/2] }},
		{"garbage", func(b []byte) []byte {
			for i := range b[4096:] {
				b[4096+i] = byte(rnd.Uint32())
			}
			return b
		}},
	} {
		data := filepath.Join(t.TempDir(), "data")
		addr := testutil.FreeAddr(t)
		args := []string{"--config.file", cfgFile, "--web.config.file", webCfg, "--web.listen-address", addr, "--storage.path", data}
		proc := &agentProcess{t: t, log: &testutil.SyncBuffer{}, args: args}
		proc.start()
		waitWithin(t, "the agent to serve workflows", time.Minute, func() bool {
			code, _ := do(t, "GET", "http://"+addr+"/api/v1/workflows", "alice", "")
			return code == 200
		})
		proc.kill()
		path := filepath.Join(data, "workflows", workflow.StoreFile)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		damaged := tc.damage(b)
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "PERFAGENT_TEST_RUN_MAIN=1")
		done := make(chan struct{})
		var out []byte
		go func() {
			out, err = cmd.CombinedOutput()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%s store: the agent started on it:\n%s", tc.name, out)
		}
		code := cmd.ProcessState.ExitCode()
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "damaged") {
				t.Logf("%s store: exit %d: %s", tc.name, code, line)
			}
		}
		if code == 0 {
			t.Errorf("%s store: the agent exited 0", tc.name)
		}
		for _, want := range []string{path, "damaged", "restore the file from a backup", "move it away"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s store: the agent's log does not say %q:\n%s", tc.name, want, out)
			}
		}
		if after, err := os.ReadFile(path); err != nil || string(after) != string(damaged) {
			t.Errorf("%s store: the file changed when the agent refused it (err %v)", tc.name, err)
		}
		if !t.Failed() {
			refused = append(refused, fmt.Sprintf("%s (exit %d)", tc.name, code))
		}
	}
	figure(t, "corrupt store", "%d of 2 damaged workflow stores refused at start, the file named and left unchanged: %s",
		len(refused), strings.Join(refused, ", "))
}

// TestFaultSignalsSurviveSIGKILL SIGKILLs an agent as it writes to its
// TSDB's write-ahead log and restarts it: the TSDB replays (and, if the
// last record is torn, repairs) its log, and every signal value the API
// answered before the kill must be answered again.
func TestFaultSignalsSurviveSIGKILL(t *testing.T) {
	faultSuite(t)
	sim := startSimFleet(t, "signals-secret", 1)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "perfagent.yml")
	if err := os.WriteFile(cfgFile, []byte(fastConfig("http://"+sim.addrs[0])), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	data := filepath.Join(dir, "data")
	proc := &agentProcess{t: t, log: &testutil.SyncBuffer{}, args: []string{
		"--config.file", cfgFile, "--web.listen-address", addr, "--storage.path", data,
	}}
	start := time.Now()
	proc.start()
	t.Cleanup(func() {
		proc.kill()
		if t.Failed() {
			t.Logf("agent log:\n%s", proc.log.String())
		}
	})
	history := func(end time.Time) (map[string][][2]string, int) {
		u := fmt.Sprintf("http://%s/api/v1/instances/%s?start=%d&end=%.3f&step=0.25", addr, sim.addrs[0], start.Unix(), float64(end.UnixMilli())/1000)
		code, body := do(t, "GET", u, "", "")
		var got struct {
			Data struct {
				History []struct {
					Name     string      `json:"name"`
					Quantile string      `json:"quantile"`
					Values   [][2]string `json:"values"`
				} `json:"history"`
			} `json:"data"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &got) != nil {
			return nil, 0
		}
		series, points := map[string][][2]string{}, 0
		for _, h := range got.Data.History {
			series[h.Name+" "+h.Quantile] = h.Values
			points += len(h.Values)
		}
		return series, points
	}
	var (
		end    time.Time
		before map[string][][2]string
		n      int
	)
	waitWithin(t, "10 s of signal history", time.Minute, func() bool {
		end = time.Now()
		_, n = history(end)
		return end.Sub(start) > 10*time.Second && n > 0
	})
	// A cycle stamps its signals with the time it began and writes them
	// when it ends: the history up to end is whole once a cycle that
	// began after end has ended. Read before that, its last step could
	// show the cycle before one still running at end, and the restarted
	// agent the running one's value, which its WAL kept.
	waitWithin(t, "a cycle that began after the history's end", time.Minute, func() bool {
		last, ok := lastCollection(addr)
		return ok && last.After(end)
	})
	before, n = history(end)
	wal := filepath.Join(data, "wal")
	entries, err := os.ReadDir(wal)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no WAL segment in %s: %v", wal, err)
	}
	killed := make(chan struct{})
	var once sync.Once
	watchWrites(filepath.Join(wal, entries[len(entries)-1].Name()), killed, func() {
		once.Do(func() { proc.kill(); close(killed) })
	})
	select {
	case <-killed:
	default:
		t.Fatal("the WAL segment could not be watched")
	}
	proc.start()
	var after map[string][][2]string
	waitWithin(t, "the restarted agent's history", time.Minute, func() bool {
		after, _ = history(end)
		return after != nil
	})
	lost := 0
	for name, values := range before {
		got := map[string]string{}
		for _, v := range after[name] {
			got[v[0]] = v[1]
		}
		// What went missing, beside what the restarted agent answered
		// at the same time: a lost sample and a sample written over
		// old times after the restart fail alike, and read apart.
		var missing []string
		for _, v := range values {
			if a, ok := got[v[0]]; !ok || a != v[1] {
				missing = append(missing, fmt.Sprintf("at %s %s, now %q", v[0], v[1], a))
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: %d of %d values lost after the restart (the last answered at %s): %s",
				name, len(missing), len(values), values[len(values)-1][0], strings.Join(missing[:min(len(missing), 5)], "; "))
		}
		lost += len(missing)
	}
	figure(t, "signal store crash", "SIGKILL during a WAL write: %d of %d signal values answered before it answered again after the restart (lost %d)", n-lost, n, lost)
}
