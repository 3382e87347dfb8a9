// Command accuracy measures how well perfagent's bottleneck rules find the
// bottlenecks the simulator's scenarios inject. It replays every scenario
// of the library through the collector and the built-in rules, in
// simulated time, and compares what fires with the scenario's ground
// truth: a table per scenario, a JSON report, and a last line
// "precision=P recall=R scenarios=N" followed by the forecast rules'
// figures: the median and worst lead over the detecting rules on the ramp
// scenarios (names ending in -ramp) and the false alarms, all of them
// over every scenario and those on the healthy fleets (scenarios without
// truth), the ramp and healthy scenarios replayed at several seeds.
// `make accuracy` runs it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
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
	seeds := app.Flag("seeds", "Replay the ramp scenarios and the healthy fleets at this many seeds (their own and the next ones) for the forecast figures.").Default("5").Int()
	closedLoop := app.Flag("closed-loop", "Apply the top recommendation for each scenario's bottleneck (or the lever its truth names) to the simulated server and measure its effect.").Bool()
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
	reseeded, err := reseedAll(context.Background(), *only, *seeds)
	if err != nil {
		fmt.Fprintf(stderr, "accuracy: %v\n", err)
		return 1
	}
	writeDetectionTimes(stdout, sum.TimeToDetect)
	writeForecastTable(stdout, append(slices.Clone(results), reseeded...))
	sum.Forecast = summarizeForecasts(append(slices.Clone(results), reseeded...), isRamp)
	ramps := summarize(reseededRamps(reseeded))
	writeDetectionTimes(stdout, ramps.TimeToDetect)
	b, err := json.MarshalIndent(map[string]any{"summary": sum, "reseeded_ramps": ramps, "scenarios": results, "reseeded": reseeded}, "", "  ")
	if err == nil {
		err = os.WriteFile(*report, append(b, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "accuracy: writing %s: %v\n", *report, err)
		return 1
	}
	fmt.Fprintf(stdout, "reseeded ramps: precision=%.3f recall=%.3f replays=%d on_time=%d/%d\n", ramps.Precision, ramps.Recall, ramps.Scenarios, ramps.OnTime, ramps.Detected)
	f := sum.Forecast
	fmt.Fprintf(stdout, "\nreport: %s\nprecision=%.3f recall=%.3f scenarios=%d on_time=%d/%d\n", *report, sum.Precision, sum.Recall, sum.Scenarios, sum.OnTime, sum.Detected)
	fmt.Fprintf(stdout, "forecast: warned=%d/%d lead_median=%s lead_worst=%s false_alarms=%d/%d healthy_false_alarms=%d (%d healthy replays)\n",
		f.Warned, f.Detections, f.MedianLead, f.WorstLead, f.FalseAlarms, f.Warnings, f.HealthyFalseAlarms, f.HealthyReplays)
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
	var results []*ScenarioResult
	for _, sc := range scenarios {
		if len(only) > 0 && !slices.Contains(only, sc.Name) {
			continue
		}
		res, err := replayIn(ctx, sc)
		if err != nil {
			return nil, err
		}
		results = append(results, res)
	}
	return results, nil
}

// isRamp tells the ramp scenarios, on which the forecasts' lead is
// measured: load that grows steadily into a bottleneck.
func isRamp(name string) bool { return strings.HasSuffix(name, "-ramp") }

// reseedAll replays the ramp scenarios and the healthy fleets (no truth)
// at the seeds after their own, seeds in all, for the forecast figures.
func reseedAll(ctx context.Context, only []string, seeds int) ([]*ScenarioResult, error) {
	scenarios, err := simulator.Scenarios()
	if err != nil {
		return nil, err
	}
	var results []*ScenarioResult
	for _, sc := range scenarios {
		if (len(only) > 0 && !slices.Contains(only, sc.Name)) || (!isRamp(sc.Name) && len(sc.Fleet.Truth) > 0) {
			continue
		}
		for k := 1; k < seeds; k++ {
			fleet := *sc.Fleet
			fleet.Seed += int64(k)
			res, err := replayIn(ctx, simulator.Scenario{Name: sc.Name, Fleet: &fleet, Source: sc.Source})
			if err != nil {
				return nil, err
			}
			results = append(results, res)
		}
	}
	return results, nil
}

// reseededRamps keeps the reseeded replays of ramp scenarios, whose truth
// starts at an event observed in each replay, for their timeliness figures.
func reseededRamps(reseeded []*ScenarioResult) []*ScenarioResult {
	var out []*ScenarioResult
	for _, r := range reseeded {
		if isRamp(r.Name) {
			out = append(out, r)
		}
	}
	return out
}

// replayIn replays sc with the default options in a TSDB of its own.
func replayIn(ctx context.Context, sc simulator.Scenario) (*ScenarioResult, error) {
	dir, err := os.MkdirTemp("", "perfagent-accuracy-")
	if err != nil {
		return nil, err
	}
	res, err := Replay(ctx, sc, defaultOptions(dir))
	_ = os.RemoveAll(dir)
	return res, err
}

func runClosedLoop(only []string, report string, stdout, stderr io.Writer) int {
	results, err := closedLoopAll(context.Background(), only)
	if err != nil {
		fmt.Fprintf(stderr, "accuracy: %v\n", err)
		return 1
	}
	writeLoopTable(stdout, results)
	fmt.Fprintln(stdout)
	costErr := writeLoopCostTable(stdout, results)
	sum := summarizeLoops(results)
	b, err := json.MarshalIndent(map[string]any{"summary": sum, "scenarios": results}, "", "  ")
	if err == nil {
		err = os.WriteFile(report, append(b, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "accuracy: writing %s: %v\n", report, err)
		return 1
	}
	writeEffectTable(stdout, sum.Effects)
	fmt.Fprintf(stdout, "\nreport: %s\nimproved=%d/%d median_error=%.3f median_cost_error=%.3f\n", report, sum.Improved, sum.Scenarios, sum.MedianError, costErr)
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
