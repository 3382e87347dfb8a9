// Command accuracy measures how well perfagent's bottleneck rules find the
// bottlenecks the simulator's scenarios inject. It replays every scenario
// of the library through the collector and the built-in rules, in
// simulated time, and compares what fires with the scenario's ground
// truth: a table per scenario, a JSON report, and a last line
// "precision=P recall=R scenarios=N". `make accuracy` runs it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/optiinfra/perfagent/simulator"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("accuracy", "Replay the simulator's scenarios through perfagent's collector and rules and score the detections.")
	report := app.Flag("report", "Write the JSON report to this file.").Default("accuracy.json").String()
	only := app.Flag("scenario", "Replay only these scenarios (repeatable).").Strings()
	closedLoop := app.Flag("closed-loop", "Apply the top recommendation for each scenario's bottleneck to the simulated server and measure its effect.").Bool()
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "accuracy: %v\n", err)
		return 2
	}
	if *closedLoop {
		return runClosedLoop(*only, *report, stdout, stderr)
	}
	results, err := replayAll(context.Background(), *only)
	if err != nil {
		fmt.Fprintf(stderr, "accuracy: %v\n", err)
		return 1
	}
	writeTables(stdout, results)
	sum := summarize(results)
	b, err := json.MarshalIndent(map[string]any{"summary": sum, "scenarios": results}, "", "  ")
	if err == nil {
		err = os.WriteFile(*report, append(b, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "accuracy: writing %s: %v\n", *report, err)
		return 1
	}
	fmt.Fprintf(stdout, "\nreport: %s\nprecision=%.3f recall=%.3f scenarios=%d\n", *report, sum.Precision, sum.Recall, sum.Scenarios)
	return 0
}

// defaultOptions are the clocks of the replay: the built-in rules are
// written for a 15 s evaluation interval and a 1 m rate window.
func defaultOptions(dir string) Options {
	return Options{
		Interval:   15 * time.Second,
		RateWindow: time.Minute,
		Grace:      5 * time.Minute,
		Start:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Dir:        dir,
	}
}

func replayAll(ctx context.Context, only []string) ([]*ScenarioResult, error) {
	scenarios, err := simulator.Scenarios()
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, n := range only {
		keep[n] = true
	}
	var results []*ScenarioResult
	for _, sc := range scenarios {
		if len(keep) > 0 && !keep[sc.Name] {
			continue
		}
		dir, err := os.MkdirTemp("", "perfagent-accuracy-")
		if err != nil {
			return nil, err
		}
		res, err := Replay(ctx, sc, defaultOptions(dir))
		_ = os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		results = append(results, res)
	}
	return results, nil
}

func runClosedLoop(only []string, report string, stdout, stderr io.Writer) int {
	results, err := closedLoopAll(context.Background(), only)
	if err != nil {
		fmt.Fprintf(stderr, "accuracy: %v\n", err)
		return 1
	}
	writeLoopTable(stdout, results)
	sum := summarizeLoops(results)
	b, err := json.MarshalIndent(map[string]any{"summary": sum, "scenarios": results}, "", "  ")
	if err == nil {
		err = os.WriteFile(report, append(b, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "accuracy: writing %s: %v\n", report, err)
		return 1
	}
	fmt.Fprintf(stdout, "\nreport: %s\nimproved=%d/%d median_error=%.3f\n", report, sum.Improved, sum.Scenarios, sum.MedianError)
	return 0
}

func closedLoopAll(ctx context.Context, only []string) ([]*LoopResult, error) {
	scenarios, err := simulator.Scenarios()
	if err != nil {
		return nil, err
	}
	var results []*LoopResult
	for _, sc := range scenarios {
		if len(only) > 0 && !slices.Contains(only, sc.Name) {
			continue
		}
		dir, err := os.MkdirTemp("", "perfagent-closed-loop-")
		if err != nil {
			return nil, err
		}
		res, err := ClosedLoop(ctx, sc, defaultOptions(dir))
		_ = os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		if res != nil {
			results = append(results, res)
		}
	}
	return results, nil
}
