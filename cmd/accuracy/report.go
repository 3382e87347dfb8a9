package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/simulator"
)

func builtinProfiles() ([]*collector.Profile, error) {
	profs, errs := collector.LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		return nil, fmt.Errorf("loading built-in profiles: %v", errs)
	}
	return profs, nil
}

// Summary is the accuracy over a scenario library.
type Summary struct {
	Scenarios      int     `json:"scenarios"`
	TruePositives  int     `json:"true_positives"`
	FalsePositives int     `json:"false_positives"`
	Truths         int     `json:"truths"`
	Detected       int     `json:"detected"`
	OnTime         int     `json:"on_time"`
	Precision      float64 `json:"precision"`
	Recall         float64 `json:"recall"`
	// TimeToDetect is, per bottleneck, how long after a truth interval
	// began its first detection came.
	TimeToDetect map[string]DetectionTimes `json:"time_to_detect"`
	// Forecast is how the forecast rules did, over these replays and the
	// reseeded ones.
	Forecast ForecastSummary `json:"forecast"`
}

// DetectionTimes are the times to detect of one bottleneck's detected
// truth intervals.
type DetectionTimes struct {
	Detected int           `json:"detected"`
	OnTime   int           `json:"on_time"`
	Median   time.Duration `json:"median"`
	Worst    time.Duration `json:"worst"`
}

func summarize(results []*ScenarioResult) Summary {
	var s Summary
	s.Scenarios = len(results)
	delays := map[string][]time.Duration{}
	s.TimeToDetect = map[string]DetectionTimes{}
	for _, r := range results {
		s.TruePositives += r.TruePositives
		s.FalsePositives += r.FalsePositives
		for _, t := range r.Truths {
			s.Truths++
			if !t.Detected {
				continue
			}
			s.Detected++
			delays[t.Bottleneck] = append(delays[t.Bottleneck], t.TimeToDetect)
			d := s.TimeToDetect[t.Bottleneck]
			d.Detected++
			if t.OnTime {
				s.OnTime++
				d.OnTime++
			}
			s.TimeToDetect[t.Bottleneck] = d
		}
	}
	for b, ds := range delays {
		slices.Sort(ds)
		d := s.TimeToDetect[b]
		d.Median, d.Worst = medianDuration(ds), ds[len(ds)-1]
		s.TimeToDetect[b] = d
	}
	s.Precision = 1
	if n := s.TruePositives + s.FalsePositives; n > 0 {
		s.Precision = float64(s.TruePositives) / float64(n)
	}
	s.Recall = 1
	if s.Truths > 0 {
		s.Recall = float64(s.Detected) / float64(s.Truths)
	}
	return s
}

// writeDetectionTimes prints the time to detect of each bottleneck.
func writeDetectionTimes(w io.Writer, times map[string]DetectionTimes) {
	fmt.Fprintf(w, "\n== time to detect (deadline: the rule's for plus two of its group's intervals)\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BOTTLENECK\tDETECTED\tON TIME\tMEDIAN\tWORST")
	for _, b := range slices.Sorted(maps.Keys(times)) {
		d := times[b]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", b, d.Detected, d.OnTime, d.Median, d.Worst)
	}
	_ = tw.Flush()
}

// writeTables prints one table per scenario: each truth interval with its
// outcome and time to detect, then every firing episode.
func writeTables(w io.Writer, results []*ScenarioResult) {
	for _, r := range results {
		fmt.Fprintf(w, "\n== %s: %d true positive, %d false positive, %d missed\n", r.Name, r.TruePositives, r.FalsePositives, r.Misses)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tBOTTLENECK\tINSTANCE\tINTERVAL\tOUTCOME")
		for _, t := range r.Truths {
			outcome := "missed"
			if t.Detected {
				outcome = fmt.Sprintf("detected after %s (deadline %s)", t.TimeToDetect, t.Deadline)
				if !t.OnTime {
					outcome += " LATE"
				}
			}
			fmt.Fprintf(tw, "truth\t%s\t%s\t%s–%s\t%s\n", t.Bottleneck, t.Instance, time.Duration(t.From), time.Duration(t.To), outcome)
		}
		for _, e := range r.Episodes {
			outcome := "false positive"
			if e.Truth >= 0 {
				outcome = "true positive"
			}
			fmt.Fprintf(tw, "fired\t%s\t%s\t%s–%s\t%s\n", e.Bottleneck, e.Instance, e.From, e.To, outcome)
		}
		_ = tw.Flush()
	}
}

// writeForecastTable prints the forecast rules' warnings and leads, one
// line each, for every replay that has any.
func writeForecastTable(w io.Writer, results []*ScenarioResult) {
	fmt.Fprintf(w, "\n== forecasts\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tSEED\tKIND\tBOTTLENECK\tINSTANCE\tAT\tOUTCOME")
	for _, r := range results {
		for _, l := range r.Leads {
			outcome := "detected without warning"
			if l.Warned {
				outcome = fmt.Sprintf("detected, warned %s before", l.Lead)
			}
			fmt.Fprintf(tw, "%s\t%d\tlead\t%s\t%s\t%s\t%s\n", r.Name, r.Seed, l.Bottleneck, l.Instance, l.DetectedAt, outcome)
		}
		for _, wa := range r.Warnings {
			outcome := "false alarm"
			if wa.Confirmed {
				outcome = "confirmed"
			}
			fmt.Fprintf(tw, "%s\t%d\twarning\t%s\t%s\t%s–%s\t%s\n", r.Name, r.Seed, wa.Bottleneck, wa.Instance, wa.From, wa.To, outcome)
		}
	}
	_ = tw.Flush()
}

// writeLoopTable prints one line per scenario and one per effect.
func writeLoopTable(w io.Writer, results []*LoopResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tBOTTLENECK\tAPPLIED\tAT\tCLEARED\tIMPROVED\tSIGNAL\tBEFORE\tPREDICTED\tAFTER\tERROR")
	for _, r := range results {
		if r.Applied == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t\t\tno\t%s\n", r.Scenario, r.Bottleneck, r.Reason)
			continue
		}
		action := r.Applied.ID + " " + actionText(r.Applied.Action, r.Lever)
		for i, e := range r.Effects {
			predicted, errText := "?", ""
			if e.Estimate != nil {
				predicted = fmt.Sprintf("%.4g", *e.Estimate)
			}
			if e.Error != nil {
				errText = fmt.Sprintf("%.2f", *e.Error)
			}
			signal := e.Signal
			if e.Quantile != "" {
				signal += "{" + e.Quantile + "}"
			}
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%t\t%s %s\t%.4g\t%s\t%.4g\t%s\n", r.Scenario, r.Bottleneck, action, r.AppliedAt, r.Cleared, r.Improved, signal, e.Direction, e.Before, predicted, e.After, errText)
				continue
			}
			fmt.Fprintf(tw, "\t\t\t\t\t\t%s %s\t%.4g\t%s\t%.4g\t%s\n", signal, e.Direction, e.Before, predicted, e.After, errText)
		}
		if len(r.Effects) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%t\t(no effect named)\n", r.Scenario, r.Bottleneck, action, r.AppliedAt, r.Cleared, r.Improved)
		}
		if r.Reason != "" {
			fmt.Fprintf(tw, "\t\t%s\n", r.Reason)
		}
	}
	_ = tw.Flush()
}

// writeEffectTable prints the closed loop's error per effect type.
func writeEffectTable(w io.Writer, effects []EffectSummary) {
	fmt.Fprintf(w, "\n== error by effect\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EFFECT\tN\tMEDIAN ERROR\tWORST ERROR")
	for _, e := range effects {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\n", e.Effect, e.Count, e.Median, e.Worst)
	}
	_ = tw.Flush()
}

// actionText is what was changed: a manual action by the flag its lever
// named, since its note is prose for an operator.
func actionText(a recommender.Action, lever *simulator.Lever) string {
	switch a.Kind {
	case recommender.KindFlag:
		cur := a.Current
		if cur == "" {
			cur = "?"
		}
		return fmt.Sprintf("%s %s→%s", a.Flag, cur, a.Proposed)
	case recommender.KindReplicas:
		return fmt.Sprintf("replicas %d→%d", a.From, a.To)
	default:
		if lever != nil && lever.Flag != "" {
			return fmt.Sprintf("(manual, as %s %s)", lever.Flag, lever.Value)
		}
		return a.Note
	}
}
