package main

import (
	"context"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/simulator"
)

// The accuracy floor of the built-in rules over the scenario library, as
// last measured by `make accuracy`. A change that detects worse fails
// here; raise the floor when detection improves.
const (
	minPrecision = 0.99
	minRecall    = 0.99
)

func TestAccuracyFloor(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("replays every scenario; make test runs it without -race")
	}
	results, err := replayAll(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := summarize(results)
	scenarios, _ := simulator.Scenarios()
	if sum.Scenarios != len(scenarios) || sum.Scenarios < 15 {
		t.Errorf("replayed %d scenarios, want all %d", sum.Scenarios, len(scenarios))
	}
	if sum.Precision < minPrecision || sum.Recall < minRecall {
		t.Errorf("precision=%.3f recall=%.3f, below the floor precision=%.2f recall=%.2f", sum.Precision, sum.Recall, minPrecision, minRecall)
	}
	for _, r := range results {
		if r.Name == "healthy" && r.FalsePositives > 0 {
			t.Errorf("%d bottlenecks fired on the healthy fleet: %+v", r.FalsePositives, r.Episodes)
		}
	}
	t.Logf("precision=%.3f recall=%.3f scenarios=%d", sum.Precision, sum.Recall, sum.Scenarios)
}

func TestScoreMatchesEpisodesToTruth(t *testing.T) {
	sc := simulator.Scenario{Name: "x", Fleet: &simulator.FleetConfig{Truth: []simulator.Truth{
		{Bottleneck: "B1", Server: "s0", From: simulator.Duration(5 * time.Minute), To: simulator.Duration(10 * time.Minute)},
		{Bottleneck: "B2", Server: "s0", From: simulator.Duration(5 * time.Minute), To: simulator.Duration(10 * time.Minute)},
	}}}
	servers := map[string]*simulator.Server{}
	cfg, err := simulator.ParseFleet("x.yaml", []byte("servers:\n- {name: s0, engine: vllm, listen: 'a:1'}\n- {name: s1, engine: vllm, listen: 'b:1'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := simulator.NewFleet(cfg, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range fleet.Servers() {
		servers[s.Listen()] = s
	}
	m := time.Minute
	firing := map[Detection][]time.Duration{
		// B1 on s0 from 6m to 7m, then again at 20m (after the grace).
		{"B1", "a:1"}: {6 * m, 6*m + 15*time.Second, 6*m + 30*time.Second, 20 * m},
		// B1 on the wrong instance.
		{"B1", "b:1"}: {6 * m},
	}
	pipe, err := agent.New(agent.Options{Rules: rules.NewManager(rules.ManagerOptions{})}, agent.Config{Interval: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &replay{sc: sc, o: Options{Interval: 15 * time.Second, Grace: 5 * m}, firing: firing, servers: servers, pipe: pipe}
	res := r.score()
	if res.TruePositives != 1 || res.FalsePositives != 2 || res.Misses != 1 {
		t.Errorf("tp=%d fp=%d misses=%d, want 1, 2, 1: %+v", res.TruePositives, res.FalsePositives, res.Misses, res.Episodes)
	}
	if !res.Truths[0].Detected || res.Truths[0].TimeToDetect != m {
		t.Errorf("B1 truth = %+v, want detected after 1m", res.Truths[0])
	}
	if res.Truths[1].Detected {
		t.Error("B2 detected without firing")
	}
	sum := summarize([]*ScenarioResult{res})
	if sum.Precision != 1.0/3 || sum.Recall != 0.5 {
		t.Errorf("precision=%g recall=%g, want 1/3 and 1/2", sum.Precision, sum.Recall)
	}
}

// The closed-loop floor: scenarios whose bottleneck cleared with the
// targeted signal moving the predicted way, as last measured by `make
// closed-loop`.
const minImproved = 13

func TestClosedLoopFloor(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("replays every scenario with a change applied; make test runs it without -race")
	}
	results, err := closedLoopAll(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := summarizeLoops(results)
	if sum.Improved < minImproved {
		t.Errorf("improved=%d/%d, below the floor of %d", sum.Improved, sum.Scenarios, minImproved)
	}
	t.Logf("improved=%d/%d median_error=%.3f", sum.Improved, sum.Scenarios, sum.MedianError)
}
