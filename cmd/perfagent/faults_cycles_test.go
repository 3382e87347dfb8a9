package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cycleLine is the agent's log line of a finished cycle (agent.Run).
var cycleLine = regexp.MustCompile(`msg="Cycle (completed|outlasted[^"]*)".* duration=(\S+) interval=(\S+)`)

// loggedCycle is one finished cycle as the agent logged it.
type loggedCycle struct {
	took, interval time.Duration
}

// cyclesAfter returns the cycles logged in log after byte offset from.
func cyclesAfter(t *testing.T, log string, from int) []loggedCycle {
	t.Helper()
	var out []loggedCycle
	for _, m := range cycleLine.FindAllStringSubmatch(log[from:], -1) {
		took, err1 := time.ParseDuration(m[2])
		iv, err2 := time.ParseDuration(m[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("cycle line %q: %v %v", m[0], err1, err2)
		}
		out = append(out, loggedCycle{took, iv})
	}
	return out
}

// rssHighWater is the most resident memory the process has used, from
// /proc (Linux).
func rssHighWater(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("/proc/%d/status has no VmHWM", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// TestFaultCyclesUnderAPILoad: API load never stalls collection. The agent
// scrapes 1000 simulated vLLM servers every 15 s; it runs a fixed number of
// cycles idle, then as many with 64 clients reading the read endpoints
// and /metrics without pause. Every cycle must finish within its
// interval. The figure compares the cycles under load with the idle ones,
// and the resident memory's high-water mark after each phase.
// PERFAGENT_CYCLES_INSTANCES sets the fleet's size.
func TestFaultCyclesUnderAPILoad(t *testing.T) {
	faultSuite(t)
	const (
		clients = 64
		cycles  = 6
		secret  = "cycles-secret"
		// The production default: a 5 s cycle does not fit 1000 servers
		// and their simulator on two cores even without load.
		interval = 15 * time.Second
	)
	instances := 1000
	if s := os.Getenv("PERFAGENT_CYCLES_INSTANCES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			t.Fatalf("PERFAGENT_CYCLES_INSTANCES=%q: a whole number of 2 or more", s)
		}
		instances = n
	}
	sim := vllmFleet(t, secret, instances, 2, time.Second)
	p, base, exited := loadAgent(t, sim, secret, "debug", interval)
	c := newLoadClient(base, clients)

	deadline := time.Now().Add(3 * time.Minute)
	for ; ; time.Sleep(time.Second) {
		select {
		case <-exited:
			t.Fatal("the agent exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 minutes the agent has fewer than %d instances", instances)
		}
		code, body, err := c.do(http.MethodGet, "/api/v1/health", "alice", "")
		var h struct{ Data struct{ Instances int } }
		if err == nil && code == http.StatusOK && json.Unmarshal(body, &h) == nil && h.Data.Instances >= instances {
			break
		}
	}

	// waitCycles waits for n cycles logged after from, and returns them;
	// past a deadline it returns those logged, and a cycle cut short
	// counts as one that outlasted its interval.
	waitCycles := func(phase string, from, n int) []loggedCycle {
		wait := time.Duration(n)*3*interval + time.Minute
		deadline := time.Now().Add(wait)
		for ; ; time.Sleep(200 * time.Millisecond) {
			cs := cyclesAfter(t, p.log.String(), from)
			if len(cs) >= n {
				return cs[:n]
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %d cycles logged in %s, want %d", phase, len(cs), wait, n)
				return append(cs, loggedCycle{took: wait, interval: interval})
			}
		}
	}
	// A cycle that began before a phase is not counted in it.
	waitCycles("settling", len(p.log.String()), 1)
	idle := waitCycles("idle", len(p.log.String()), cycles)
	rssIdle := rssHighWater(t, p.cmd.Process.Pid)

	reads := []string{
		"/api/v1/health", "/api/v1/instances", "/api/v1/instances/" + sim.addrs[0], "/api/v1/instances/" + sim.addrs[1],
		"/api/v1/bottlenecks", "/api/v1/recommendations", "/api/v1/signals", "/api/v1/rules", "/api/v1/forecasts",
		"/api/v1/targets", "/api/v1/workflows", "/metrics",
	}
	var (
		stop             atomic.Bool
		wg               sync.WaitGroup
		requests, failed atomic.Int64
		errMu            sync.Mutex
		firstErr         string
	)
	from := len(p.log.String())
	for i := range clients {
		wg.Go(func() {
			for n := i; !stop.Load(); n++ {
				path := reads[n%len(reads)]
				code, _, err := c.do(http.MethodGet, path, "alice", "")
				requests.Add(1)
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					errMu.Lock()
					if firstErr == "" {
						firstErr = fmt.Sprintf("GET %s = %d %v", path, code, err)
					}
					errMu.Unlock()
				}
			}
		})
	}
	loadStart := time.Now()
	// The cycle under way when the load starts is not counted either.
	loaded := waitCycles("under load", from, cycles+1)
	if len(loaded) > 1 {
		loaded = loaded[1:]
	}
	stop.Store(true)
	wg.Wait()
	loadTook := time.Since(loadStart)
	rssLoaded := rssHighWater(t, p.cmd.Process.Pid)

	if failed.Load() > 0 {
		t.Errorf("%d of %d reads failed; the first: %s", failed.Load(), requests.Load(), firstErr)
	}
	durations := func(cs []loggedCycle) (out []time.Duration, over int) {
		for _, c := range cs {
			out = append(out, c.took)
			if c.took > c.interval {
				over++
			}
		}
		return out, over
	}
	idleD, idleOver := durations(idle)
	loadD, loadOver := durations(loaded)
	if loadOver > 0 {
		t.Errorf("%d of %d cycles under load outlasted their %s interval: %v", loadOver, len(loaded), loaded[0].interval, loadD)
	}
	format := func(ds []time.Duration) string {
		s := make([]string, len(ds))
		for i, d := range ds {
			s[i] = strconv.FormatFloat(d.Seconds(), 'f', 2, 64)
		}
		return strings.Join(s, " ")
	}
	median := func(ds []time.Duration) time.Duration { return quantile(ds, 0.5) }
	t.Logf("idle cycles (s): %s; under load (s): %s", format(idleD), format(loadD))
	figure(t, "cycles under API load",
		"%d instances, %d clients on %d read paths and /metrics (%d reads, %.0f/s, %d failed): %d of %d cycles within their %s interval (%d of %d idle); cycle median %s under load, %s idle (%.2f×), longest %s under load, %s idle (%.2f×); RSS high-water %d MiB after the idle cycles, %d MiB after the load (%.2f×)",
		instances, clients, len(reads)-1, requests.Load(), float64(requests.Load())/loadTook.Seconds(), failed.Load(),
		len(loaded)-loadOver, len(loaded), loaded[0].interval, len(idle)-idleOver, len(idle),
		ms(median(loadD)), ms(median(idleD)), float64(median(loadD))/float64(median(idleD)),
		ms(slices.Max(loadD)), ms(slices.Max(idleD)), float64(slices.Max(loadD))/float64(slices.Max(idleD)),
		rssIdle>>20, rssLoaded>>20, float64(rssLoaded)/float64(rssIdle))
}
