package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// browser is one user's tab of Debian's chromium, headless, signed in to
// the agent with basic auth.
type browser struct {
	t    *testing.T
	ctx  context.Context
	user string
	// shots is where screenshots of failing steps go.
	shots string
}

// newBrowsers starts chromium and opens one tab per user; the test is
// skipped where chromium is not installed (.ci/run installs it).
func newBrowsers(t *testing.T, users ...string) []*browser {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))...)
	t.Cleanup(cancel)
	shots := filepath.Join(os.TempDir(), "perfagent-ui-"+strings.ReplaceAll(t.Name(), "/", "-"))
	var out []*browser
	for _, u := range users {
		ctx, cancel := chromedp.NewContext(alloc)
		t.Cleanup(cancel)
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":pw"))
		if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
			return err
		})); err != nil {
			t.Fatalf("starting chromium: %v", err)
		}
		out = append(out, &browser{t: t, ctx: ctx, user: u, shots: shots})
	}
	return out
}

// run runs actions with a time limit; on failure it saves a screenshot of
// the page and fails the test, saying what step failed.
func (b *browser) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		sctx, scancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer scancel()
		if png, err := chromedp.Run(sctx, chromedp.FullScreenshot(80)); err == nil && os.MkdirAll(b.shots, 0o755) == nil {
			path := filepath.Join(b.shots, b.user+"-"+strings.ReplaceAll(step, " ", "-")+".jpg")
			if os.WriteFile(path, png, 0o644) == nil {
				b.t.Logf("screenshot of the failed step: %s", path)
			}
		}
		text, _ := chromedp.Run(sctx, chromedp.Text(chromedp.CSS("main")))
		b.t.Fatalf("%s, as %s: %v\npage:\n%s", step, b.user, err, text)
	}
}

// screenshot saves the page as docs' screenshot name when
// PERFAGENT_UI_SCREENSHOTS names a directory (make ui-screenshots).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("PERFAGENT_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	// Let charts draw and the page settle.
	time.Sleep(time.Second)
	img, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), img, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// waitText waits until the text of the element sel selects contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return waitFunc(sel, func(text string) bool { return strings.Contains(text, want) })
}

// waitJS waits until the JavaScript expression is true in the page.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tg)
			if err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w; %s is not true (last error: %v)", ctx.Err(), expr, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// waitFunc waits until ok accepts the text of the element sel selects.
func waitFunc(sel string, ok func(text string) bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		// Pages re-render as data arrives, so a node found may be gone by
		// the time its text is read: that is "not yet", not a failure.
		var last error
		for {
			text, err := chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)(ctx, tg)
			if err == nil && ok(text) {
				return nil
			}
			if err != nil {
				last = err
			} else {
				last = fmt.Errorf("%s reads %q", sel, text)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w; last: %v", ctx.Err(), last)
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// TestUIInBrowser drives the web UI in a real browser over an agent
// watching the demo's simulated fleet: the fleet page lists its five
// servers and their engines; the instance page of the pressured server draws its KV-cache
// chart and shows its bottleneck, switches to a 6-hour range and refreshes
// in place, without reloading the page; alice starts a workflow from a
// recommendation and cannot approve her own change; bob approves it from
// the workflow page, which then shows the rollout moving on; the
// bottlenecks, recommendations, workflows, rules and status pages show
// what the API holds.
func TestUIInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs chromium, the agent and a simulated fleet")
	}
	users := newBrowsers(t, "alice", "bob")
	alice, bob := users[0], users[1]

	const secret = "ui-secret"
	sim := startDemoFleet(t, secret)
	// The demo's third server is the vLLM one whose KV cache fills.
	pressured := sim.addrs[2]
	cfg, webCfg := rolloutFiles(t, sim, sim.webhook.URL, secret, "", "warmup: 30s\n  window: 10s", "alice", "bob")
	a := startAgent(t, cfg, func(f *daemonFlags) { f.webConfigFile = webCfg })
	waitFor(t, "a recommendation with values", func() bool {
		code, body := do(t, "GET", a.url+"/api/v1/recommendations?id=raise_gpu_memory_utilization&instance="+pressured, "alice", "")
		return code == 200 && strings.Contains(body, `"proposed"`)
	})

	if os.Getenv("PERFAGENT_UI_SCREENSHOTS") != "" {
		// Screenshots for the docs show a minute of history.
		time.Sleep(time.Minute)
	}
	alice.run("fleet page",
		chromedp.Navigate(a.url+"/"),
		waitText(".counts", "5\ninstances"),
		waitText(".counts", "vllm"),
		waitText(".counts", "sglang"),
		waitText(".counts", "tgi"),
		waitText("main table", sim.addrs[0]),
		waitText("main table", sim.addrs[4]),
	)
	alice.screenshot("fleet")
	alice.run("instance page",
		chromedp.Navigate(a.url+"/instances/"+pressured),
		chromedp.WaitVisible(chromedp.CSS(`[data-chart="KV cache usage"] canvas`)),
		waitText("main", "KVTest"),
		waitText("main", "--gpu-memory-utilization"),
		// The test's configuration prices every GPU at 2.5 an hour.
		waitText("main", "2.5 USD per hour: 1 × h100"),
		waitText("main", "USD per million generated tokens"),
		waitText("main", "0 USD per hour"),
	)
	alice.screenshot("instance")
	alice.run("the range picker and the refresh in place",
		// A page reload would lose this marker; the refresh must not.
		waitJS(`(window.perfagentTest = document.getElementById("updated").textContent, true)`),
		chromedp.Click(chromedp.Search(`//div[@aria-label="range"]//button[text()="6h"]`)),
		waitJS(`location.search === "?range=6h" && document.querySelector('[aria-label="range"] [aria-pressed="true"]').textContent === "6h"`),
		// The charts are redrawn on every refresh, so the canvas is looked
		// up afresh each time rather than waited on as one node.
		waitJS(`document.querySelector('[data-chart="KV cache usage"] canvas')?.offsetWidth > 0`),
		waitJS(`window.perfagentTest !== undefined && document.getElementById("updated").textContent !== window.perfagentTest`),
	)
	alice.run("start a workflow",
		chromedp.Click(chromedp.Search(`//tr[td//code[contains(., "gpu-memory-utilization")]]//button[contains(., "Start workflow")]`)),
		waitText("h1", "Workflow wf-"),
		waitText("[data-state]", "awaiting_approval"),
	)
	url, err := chromedp.Run(alice.ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	alice.run("approving her own change is refused",
		chromedp.Click(chromedp.Search(`//button[text()="Approve"]`)),
		waitText(".message.error", "Approval refused"),
		waitText(".message.error", "alice"),
	)
	bob.run("approve from the workflow page",
		chromedp.Navigate(url),
		waitText("[data-state]", "awaiting_approval"),
		chromedp.Click(chromedp.Search(`//button[text()="Approve"]`)),
		waitText(".message", "Approval recorded"),
	)
	bob.run("the rollout moves on",
		waitFunc("[data-state]", func(state string) bool { return state != "awaiting_approval" && state != "" }),
		waitText(".progress", "stage-1"),
	)
	bob.screenshot("workflow")

	bob.run("the fleet-wide pages",
		chromedp.Navigate(a.url+"/bottlenecks?state=firing"),
		waitText("main table", "KVTest"),
		chromedp.Navigate(a.url+"/recommendations"),
		waitText("main table", "raise_gpu_memory_utilization"),
		chromedp.Navigate(a.url+"/workflows"),
		waitText("main table", "wf-"),
		chromedp.Navigate(a.url+"/rules"),
		waitText("main", "KVTest"),
		chromedp.Navigate(a.url+"/status"),
		waitText("main", "embedded"),
		// The demo's five servers, counted by the health summary and
		// listed from /api/v1/targets.
		waitText("main", "5 targets: 5 up"),
		waitText("main", sim.addrs[4]+"/metrics"),
		waitText("main pre", "source:"),
	)
}
