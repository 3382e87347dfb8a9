package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// curlCommand is one curl line of the README's walkthrough.
type curlCommand struct {
	line, method, user, password, url, body string
}

// shellWords splits a command line as the shell would for the quoting the
// README uses: single quotes, double quotes and plain words.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case '\'', '"':
			end := strings.IndexByte(line[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unclosed %c in %q", c, line)
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case ' ', '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func parseCurl(line string) (curlCommand, error) {
	c := curlCommand{line: line, method: http.MethodGet}
	words, err := shellWords(line)
	if err != nil {
		return c, err
	}
	for i := 1; i < len(words); i++ {
		w := words[i]
		next := func() string {
			if i+1 < len(words) {
				i++
				return words[i]
			}
			return ""
		}
		switch {
		case w == "-s" || w == "-f" || w == "-sf":
		case w == "-u":
			c.user, c.password, _ = strings.Cut(next(), ":")
		case w == "-X":
			c.method = next()
		case strings.HasPrefix(w, "-X"):
			c.method = w[2:]
		case w == "-d":
			c.body = next()
			if c.method == http.MethodGet {
				c.method = http.MethodPost
			}
		case strings.HasPrefix(w, "-"):
			return c, fmt.Errorf("curl option %s is not understood by the walkthrough test: %q", w, line)
		default:
			c.url = w
		}
	}
	if !strings.HasPrefix(c.url, "http") {
		c.url = "http://" + c.url
	}
	return c, nil
}

// walkthrough returns the curl commands of the README section whose
// heading contains title, in order.
func walkthrough(t *testing.T, readme, title string) []curlCommand {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []curlCommand
	in, block := false, false
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") && !block:
			in = strings.Contains(line, title)
		case strings.HasPrefix(line, "```"):
			block = !block
		case in && block && strings.HasPrefix(strings.TrimSpace(line), "curl "):
			c, err := parseCurl(strings.TrimSpace(line))
			if err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, c)
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("%s has no curl commands under a heading with %q", readme, title)
	}
	return cmds
}

func TestParseCurl(t *testing.T) {
	c, err := parseCurl(`curl -s -u bob:demo -XPOST 127.0.0.1:8002/api/v1/workflows/WID/approve -d '{"proposal_hash":"HASH"}'`)
	if err != nil || c.method != "POST" || c.user != "bob" || c.password != "demo" || c.url != "http://127.0.0.1:8002/api/v1/workflows/WID/approve" || c.body != `{"proposal_hash":"HASH"}` {
		t.Fatalf("%+v, %v", c, err)
	}
	if _, err := parseCurl(`curl --data-binary @x http://a`); err == nil {
		t.Fatal("an option the test cannot follow was accepted")
	}
}

// runDemo builds the binaries and runs examples/demo/run.sh as `make demo`
// does, with the simulator's clock at speed and the workflow windows
// shortened, until the test ends.
func runDemo(t *testing.T, speed string, workflowTimes map[string]string) {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/perfagent", "./cmd/llmsim")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, addr := range []string{"127.0.0.1:8002", "127.0.0.1:18000", "127.0.0.1:18099"} {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			t.Fatalf("%s already answers: stop the demo that runs there first", addr)
		}
	}
	overrides := []string{"DEMO_SPEED=" + speed}
	for k, v := range workflowTimes {
		overrides = append(overrides, "DEMO_WORKFLOW_"+strings.ToUpper(k)+"="+v)
	}
	cmd := exec.Command("bash", "examples/demo/run.sh", bin)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), overrides...)
	log := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// run.sh stops everything it started on SIGTERM.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", log.String())
		}
	})
}

// call runs one walkthrough command and returns the status and body.
func call(t *testing.T, c curlCommand, vars map[string]string) (int, []byte) {
	t.Helper()
	url, body := c.url, c.body
	for k, v := range vars {
		url, body = strings.ReplaceAll(url, k, v), strings.ReplaceAll(body, k, v)
	}
	req, err := http.NewRequest(c.method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.line, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// poll calls get every second until ok accepts the answer or limit passes.
func poll(t *testing.T, what string, limit time.Duration, get func() []byte, ok func([]byte) bool) []byte {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last []byte
	for time.Now().Before(deadline) {
		if last = get(); ok(last) {
			return last
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("after %s still no %s; last answer:\n%s", limit, what, last)
	return nil
}

var quotedID = regexp.MustCompile(`"(?:recommendation|instance)":"([^"]+)"`)

// TestDemoWalkthrough runs `make demo`'s script and follows the README's
// walkthrough as printed: bottlenecks on two engines, recommendations with
// values, a workflow proposed as alice and approved as bob, its stages,
// and its end. The simulator runs four times faster than the wall clock,
// and the workflow's windows are short.
func TestDemoWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for minutes")
	}
	cmds := walkthrough(t, "../../README.md", "Walk through a change")
	// The window holds 24 samples at the demo's 5s evaluation interval;
	// validation needs 20 per side.
	runDemo(t, "4", map[string]string{"warmup": "40s", "window": "2m"})
	agent := "http://127.0.0.1:8002"
	get := func(path string) func() []byte {
		return func() []byte {
			req, _ := http.NewRequest(http.MethodGet, agent+path, nil)
			req.SetBasicAuth("alice", "demo")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return []byte(err.Error())
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return b
		}
	}
	// The rules hold for 5 minutes of the agent's (wall) clock; the
	// simulator's speed only makes the servers' pressure build sooner.
	start := time.Now()
	poll(t, "firing bottlenecks on two engines", 8*time.Minute, get("/api/v1/bottlenecks?state=firing"), func(b []byte) bool {
		var env struct {
			Data struct {
				Bottlenecks []struct {
					Engine string `json:"engine"`
				} `json:"bottlenecks"`
			} `json:"data"`
		}
		_ = json.Unmarshal(b, &env)
		engines := map[string]bool{}
		for _, bn := range env.Data.Bottlenecks {
			engines[bn.Engine] = true
		}
		return len(engines) >= 2
	})
	t.Logf("bottlenecks firing on two engines %s after the start", time.Since(start).Round(time.Second))
	checkStack(t)

	vars := map[string]string{}
	for _, c := range cmds {
		switch {
		case c.method == http.MethodPost && strings.HasSuffix(c.url, "/api/v1/workflows"):
			// The recommendation the README proposes must be there, with values.
			m := quotedID.FindAllStringSubmatch(c.body, -1)
			if len(m) == 0 {
				t.Fatalf("%s: no recommendation in the body", c.line)
			}
			poll(t, "recommendation "+m[0][1]+" with a current and a proposed value", 3*time.Minute,
				get("/api/v1/recommendations?id="+m[0][1]), func(b []byte) bool {
					return strings.Contains(string(b), `"proposed"`) && strings.Contains(string(b), `"current"`) && !strings.Contains(string(b), `"current":"unknown"`)
				})
			code, b := call(t, c, vars)
			if code != http.StatusOK {
				t.Fatalf("%s\n= %d %s", c.line, code, b)
			}
			var env struct {
				Data struct {
					ID           string `json:"id"`
					ProposalHash string `json:"proposal_hash"`
					State        string `json:"state"`
				} `json:"data"`
			}
			if err := json.Unmarshal(b, &env); err != nil || env.Data.ID == "" || env.Data.State != "awaiting_approval" {
				t.Fatalf("%s\n= %s", c.line, b)
			}
			vars["WID"], vars["HASH"] = env.Data.ID, env.Data.ProposalHash
			checkApprovalAlert(t, env.Data.ID)
		case strings.Contains(c.url, "/approve"):
			if code, b := call(t, c, vars); code != http.StatusOK {
				t.Fatalf("%s\n= %d %s", c.line, code, b)
			}
			followWorkflow(t, get("/api/v1/workflows/"+vars["WID"]))
		default:
			if code, b := call(t, c, vars); code != http.StatusOK {
				t.Fatalf("%s\n= %d %s", c.line, code, b)
			}
		}
	}
	if vars["WID"] == "" {
		t.Fatal("the walkthrough never proposes a workflow")
	}
}

// httpBody is the body of a GET, or the error's text.
func httpBody(url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		return []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// checkStack checks the rest of the demo's stack that run.sh started:
// bottleneck alerts in Alertmanager, and Prometheus scraping the agent's
// signals with the mixin's alerts loaded.
func checkStack(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("prometheus-alertmanager"); err == nil {
		poll(t, "a bottleneck alert in the demo's Alertmanager", time.Minute, func() []byte {
			return httpBody("http://127.0.0.1:19093/api/v2/alerts?filter=bottleneck%3D~%22B.%2B%22")
		}, func(b []byte) bool {
			return strings.Contains(string(b), `"generatorURL":"http://127.0.0.1:8002/instances/127.0.0.1:1800`)
		})
	} else {
		t.Log("prometheus-alertmanager is not installed: the demo runs without it")
	}
	if _, err := exec.LookPath("prometheus"); err == nil {
		poll(t, "the demo's Prometheus with the five servers' signals", time.Minute, func() []byte {
			return httpBody("http://127.0.0.1:19090/api/v1/query?query=count(llm_instance_info%7Bjob%3D%22perfagent%22%7D)")
		}, func(b []byte) bool { return strings.Contains(string(b), `"5"]`) })
		poll(t, "the mixin's alerts in the demo's Prometheus", time.Minute, func() []byte {
			return httpBody("http://127.0.0.1:19090/api/v1/rules?type=alert")
		}, func(b []byte) bool { return strings.Contains(string(b), `"name":"PerfAgentDown"`) })
	} else {
		t.Log("prometheus is not installed: the demo runs without it")
	}
}

// checkApprovalAlert looks for the approval request in the demo's
// Alertmanager, when Debian's is installed (run.sh starts it then).
func checkApprovalAlert(t *testing.T, id string) {
	t.Helper()
	if _, err := exec.LookPath("prometheus-alertmanager"); err != nil {
		t.Log("prometheus-alertmanager is not installed: the demo runs without it")
		return
	}
	poll(t, "approval alert in the demo's Alertmanager", time.Minute, func() []byte {
		return httpBody("http://127.0.0.1:19093/api/v2/alerts?filter=alertname%3D%22PerfAgentApprovalRequired%22")
	}, func(b []byte) bool { return strings.Contains(string(b), id) })
}

// followWorkflow watches an approved workflow through its stages to its
// end, and checks what it says of each stage.
func followWorkflow(t *testing.T, get func() []byte) {
	t.Helper()
	var w struct {
		Data struct {
			State        string   `json:"state"`
			StillChanged []string `json:"still_changed"`
			Pool         []string `json:"pool"`
			Results      []struct {
				Stage   string `json:"stage"`
				Verdict string `json:"verdict"`
				Basis   string `json:"basis"`
			} `json:"results"`
			Instances []struct {
				From string `json:"from"`
			} `json:"instances"`
		} `json:"data"`
	}
	states := map[string]bool{}
	poll(t, "end of the workflow", 6*time.Minute, get, func(b []byte) bool {
		_ = json.Unmarshal(b, &w)
		states[w.Data.State] = true
		switch w.Data.State {
		case "succeeded", "rolled_back":
			return true
		case "paused", "needs_attention", "aborted":
			t.Fatalf("the demo's workflow stopped in %s:\n%s", w.Data.State, b)
		}
		return false
	})
	if !states["analysing"] && !states["warmup"] {
		t.Errorf("never saw a stage in progress (states seen: %v)", states)
	}
	if len(w.Data.Results) == 0 || w.Data.Results[0].Basis == "" {
		t.Fatalf("no validation result with its basis: %+v", w.Data.Results)
	}
	for _, ic := range w.Data.Instances {
		if ic.From == "" {
			t.Fatalf("an instance was changed without the value to restore: %+v", w.Data.Instances)
		}
	}
	switch w.Data.State {
	case "succeeded":
		if len(w.Data.StillChanged) != len(w.Data.Pool) {
			t.Fatalf("succeeded, but still_changed %v is not the pool %v", w.Data.StillChanged, w.Data.Pool)
		}
	case "rolled_back":
		if len(w.Data.StillChanged) != 0 {
			t.Fatalf("rolled back, but %v still changed", w.Data.StillChanged)
		}
	}
	t.Logf("the demo's workflow %s; stages %+v", w.Data.State, w.Data.Results)
}
