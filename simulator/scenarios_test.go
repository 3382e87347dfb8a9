package simulator

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var testStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// samples are a server's states every sampleStep from the start of a run.
type samples []State

const sampleStep = 15 * time.Second

func runFleet(t testing.TB, cfg *FleetConfig, d time.Duration) map[string]samples {
	t.Helper()
	out, _ := runFleetEvents(t, cfg, d)
	return out
}

// runFleetEvents is runFleet that also returns, per server, when each
// physical event a truth can start at first happened.
func runFleetEvents(t testing.TB, cfg *FleetConfig, d time.Duration) (map[string]samples, map[string]map[string]time.Duration) {
	t.Helper()
	f, err := NewFleet(cfg, testStart)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]samples{}
	for at := time.Duration(0); at <= d; at += sampleStep {
		f.Advance(testStart.Add(at))
		for _, s := range f.Servers() {
			out[s.Name()] = append(out[s.Name()], s.State())
		}
	}
	observed := map[string]map[string]time.Duration{}
	for _, s := range f.Servers() {
		observed[s.Name()] = map[string]time.Duration{}
		for _, name := range events() {
			if at, ok := s.Observed(name); ok {
				observed[s.Name()][name] = at
			}
		}
	}
	return out, observed
}

// window summarises a server's samples between from and to.
type window struct {
	first, last                  State
	avgWaiting, avgRunning       float64
	maxWaiting, maxRunning       int
	avgKV, maxKV                 float64
	ttft, itl, queue, prefill    HistogramSnapshot
	e2e, promptLen, meanTPT      HistogramSnapshot
	inference                    HistogramSnapshot
	preemptions, retractions     float64
	aborted, finished, rejected  float64
	prefixQueries, prefixHits    float64
	maxRunningCap, kvCapacityTok int
	specDraft, specAccepted      float64
}

func (ss samples) window(from, to time.Duration) window {
	i0, i1 := int(from/sampleStep), min(int(to/sampleStep), len(ss)-1)
	w := window{first: ss[i0], last: ss[i1]}
	n := 0.0
	for _, s := range ss[i0+1 : i1+1] {
		n++
		w.avgWaiting += float64(s.Waiting)
		w.avgRunning += float64(s.Running)
		w.avgKV += s.KVUsage
		w.maxWaiting = max(w.maxWaiting, s.Waiting)
		w.maxRunning = max(w.maxRunning, s.Running)
		w.maxKV = max(w.maxKV, s.KVUsage)
	}
	w.avgWaiting /= n
	w.avgRunning /= n
	w.avgKV /= n
	a, b := w.first, w.last
	w.ttft = b.TTFT.Sub(a.TTFT)
	w.itl = b.ITL.Sub(a.ITL)
	w.queue = b.Queue.Sub(a.Queue)
	w.prefill = b.Prefill.Sub(a.Prefill)
	w.e2e = b.E2E.Sub(a.E2E)
	w.inference = b.Inference.Sub(a.Inference)
	w.promptLen = b.PromptLen.Sub(a.PromptLen)
	w.meanTPT = b.MeanTPT.Sub(a.MeanTPT)
	w.preemptions = b.Counters.Preemptions - a.Counters.Preemptions
	w.retractions = b.Counters.Retractions - a.Counters.Retractions
	w.aborted = b.Counters.Aborted - a.Counters.Aborted
	w.finished = b.Counters.Finished - a.Counters.Finished
	w.rejected = b.Counters.Rejected - a.Counters.Rejected
	w.prefixQueries = b.Counters.PrefixQueries - a.Counters.PrefixQueries
	w.prefixHits = b.Counters.PrefixHits - a.Counters.PrefixHits
	w.maxRunningCap = b.MaxRunning
	w.specDraft = b.Counters.SpecDraftTokens - a.Counters.SpecDraftTokens
	w.specAccepted = b.Counters.SpecAccepted - a.Counters.SpecAccepted
	w.kvCapacityTok = b.KVCapacityTokens
	return w
}

func (w window) String() string {
	return fmt.Sprintf("wait avg=%.1f max=%d run avg=%.1f max=%d/%d kv avg=%.2f max=%.2f preempt=%.0f retract=%.0f abort=%.0f finished=%.0f rejected=%.0f hit=%.2f ttft p50=%.3f p95=%.3f p99=%.3f mean=%.3f queue mean=%.3f prefill mean=%.3f itl mean=%.4f p95=%.4f e2e mean=%.2f tpt mean=%.4f",
		w.avgWaiting, w.maxWaiting, w.avgRunning, w.maxRunning, w.maxRunningCap, w.avgKV, w.maxKV, w.preemptions, w.retractions, w.aborted, w.finished, w.rejected,
		ratio(w.prefixHits, w.prefixQueries), w.ttft.Quantile(0.5), w.ttft.Quantile(0.95), w.ttft.Quantile(0.99), w.ttft.Mean(), w.queue.Mean(), w.prefill.Mean(),
		w.itl.Mean(), w.itl.Quantile(0.95), w.e2e.Mean(), w.meanTPT.Mean())
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// symptom is a bottleneck's symptom check on a server's window (docs/bottlenecks.md), given the
// windows of the other servers serving the same model (for B10).
type symptom func(s State, w window, peers []window) error

func need(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

var symptoms = map[string]symptom{
	"B1": func(s State, w window, _ []window) error {
		switch s.Engine {
		case EngineVLLM:
			return need(w.preemptions > 0 && w.maxKV >= 0.9, "want preemptions > 0 and KV usage >= 0.9")
		case EngineSGLang:
			// SGLang calls about one retraction a minute normal.
			minutes := w.last.Time.Sub(w.first.Time).Minutes()
			return need(w.retractions > minutes && w.maxKV >= 0.9, "want more than one retraction a minute and token usage >= 0.9")
		default:
			return need(w.avgWaiting >= 1 && w.maxKV >= 0.9 && w.preemptions == 0,
				"want a queue while reserved tokens fill max_batch_total_tokens (>= 0.9), without preemption")
		}
	},
	"B2": func(s State, w window, _ []window) error {
		if s.Engine == EngineTGI && w.avgWaiting < 5 {
			// TGI rejects beyond max_concurrent_requests instead of queueing further.
			return need(ratio(w.rejected, w.finished+w.rejected) > 0.01 && w.avgRunning >= 0.9*float64(w.maxRunningCap),
				"want overloaded rejections with the batch at max_concurrent_requests")
		}
		return need(w.avgWaiting >= 5 && w.last.Waiting >= 5 && w.queue.Mean() >= 1,
			"want waiting >= 5 on average and at the end, and mean queue time >= 1s")
	},
	"B3": func(_ State, w window, _ []window) error {
		return need(w.avgRunning >= 0.9*float64(w.maxRunningCap) && w.avgKV < 0.7 && w.avgWaiting >= 1 && w.preemptions == 0,
			"want running pinned at the cap, KV < 0.7, a queue and no preemptions")
	},
	"B4": func(_ State, w window, _ []window) error {
		ttft := w.ttft.Mean()
		return need(w.ttft.Quantile(0.95) > 0.5 && w.queue.Mean() < 0.3*ttft && w.prefill.Mean() >= 0.7*ttft,
			"want TTFT p95 > 0.5s with prefill >= 70%% and queue < 30%% of TTFT")
	},
	"B5": func(_ State, w window, _ []window) error {
		return need(w.itl.Quantile(0.95) > 0.05 && w.itl.Mean() > 0.05 && w.avgWaiting < 1, "want ITL mean and p95 above 50ms without a queue")
	},
	"B6": func(_ State, w window, _ []window) error {
		return need(w.maxWaiting == 0 && w.maxKV < 0.3 && w.avgRunning < 0.05*float64(w.maxRunningCap),
			"want no queue, KV < 0.3 and a small batch")
	},
	"B7": func(s State, w window, _ []window) error {
		return need(s.Workload.SharedPrefixFraction >= 0.3 && ratio(w.prefixHits, w.prefixQueries) < 0.5*s.Workload.SharedPrefixFraction,
			"want a prefix hit rate below half the shared prefix fraction")
	},
	"B8": func(_ State, w window, _ []window) error {
		return need(w.ttft.Quantile(0.99) > 5*w.ttft.Quantile(0.5) && w.promptLen.Quantile(0.995) > 10*w.promptLen.Quantile(0.5),
			"want TTFT p99 > 5 x p50 and a heavy prompt-length tail")
	},
	"B9": func(_ State, w window, _ []window) error {
		return need(ratio(w.aborted+w.rejected, w.finished+w.aborted+w.rejected) > 0.02, "want aborted or rejected share > 2%%")
	},
	"B11": func(s State, w window, _ []window) error {
		return need(s.Settings.NumSpeculativeTokens > 0 && w.specDraft > 0 && ratio(w.specAccepted, w.specDraft) < 0.5 &&
			w.itl.Quantile(0.95) > 0.05 && w.avgWaiting < 1,
			"want speculative decoding on with under half the draft tokens accepted, ITL p95 above 50ms and no queue")
	},
	"B13": func(_ State, w window, _ []window) error {
		return need(w.frontendGap() > 0.1*w.e2e.Mean() && w.avgWaiting < 1, "want mean e2e − queue − inference > 10%% of mean e2e, no queue")
	},
	"B10": func(_ State, w window, peers []window) error {
		if len(peers) == 0 {
			return fmt.Errorf("no peer replicas of the same model")
		}
		for _, p := range peers {
			if w.avgWaiting-p.avgWaiting < 5 && w.maxKV-p.maxKV < 0.5 {
				return fmt.Errorf("want waiting or KV usage far above every peer")
			}
		}
		return nil
	},
}

// frontendGap is the mean time of a finished request outside the engine's
// queue and batch; 0 without an inference histogram (SGLang).
func (w window) frontendGap() float64 {
	if w.inference.Count == 0 || w.e2e.Count == 0 {
		return 0
	}
	return w.e2e.Mean() - w.queue.Mean() - w.inference.Mean()
}

// healthy fails if any bottleneck symptom is present.
func healthy(s State, w window) error {
	var bad []string
	if w.preemptions > 0 || w.retractions > 0 {
		bad = append(bad, "preemptions")
	}
	if w.maxKV >= 0.9 {
		bad = append(bad, "KV >= 0.9")
	}
	if w.avgWaiting >= 1 {
		bad = append(bad, "queue")
	}
	if w.aborted+w.rejected > 0 {
		bad = append(bad, "aborts")
	}
	if s.Engine != EngineTGI && w.ttft.Quantile(0.95) > 1 {
		bad = append(bad, "TTFT p95 > 1s")
	}
	if w.frontendGap() > 0.1*w.e2e.Mean() {
		bad = append(bad, "frontend gap > 10% of e2e")
	}
	if len(bad) > 0 {
		return fmt.Errorf("unhealthy: %s", strings.Join(bad, ", "))
	}
	return nil
}

func TestScenariosShowTheirBottlenecks(t *testing.T) {
	scs, err := Scenarios()
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 15 {
		t.Fatalf("want at least 15 scenarios, got %d", len(scs))
	}
	for _, sc := range scs {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			d := time.Duration(sc.Fleet.Duration)
			runs, events := runFleetEvents(t, sc.Fleet, d)
			models := map[string]string{}
			for _, s := range sc.Fleet.Servers {
				models[s.Name] = s.Model.Name
			}
			if len(sc.Fleet.Truth) == 0 {
				for name, ss := range runs {
					w := ss.window(2*time.Minute, d)
					if err := healthy(ss[len(ss)-1], w); err != nil {
						t.Errorf("%s: %v\n%s", name, err, w)
					}
				}
				return
			}
			for _, tr := range sc.Fleet.Truth {
				ss := runs[tr.Server]
				from, to := time.Duration(tr.From), time.Duration(tr.To)
				if tr.FromEvent != "" {
					at, ok := events[tr.Server][tr.FromEvent]
					if !ok {
						t.Fatalf("%s on %s: no %s in the run", tr.Bottleneck, tr.Server, tr.FromEvent)
					}
					from = at
				}
				w := ss.window(from, to)
				var peers []window
				for name, other := range runs {
					if name != tr.Server && models[name] == models[tr.Server] {
						peers = append(peers, other.window(from, to))
					}
				}
				t.Logf("%s on %s: %s", tr.Bottleneck, tr.Server, w)
				if err := symptoms[tr.Bottleneck](ss[len(ss)-1], w, peers); err != nil {
					t.Errorf("%s on %s in [%v, %v]: %v\n%s", tr.Bottleneck, tr.Server, from, to, err, w)
				}
				// Before the interval (after warm-up) the server must not already show it.
				if from >= 10*time.Minute {
					before := ss.window(2*time.Minute, from-5*time.Minute)
					if err := symptoms[tr.Bottleneck](ss[len(ss)-1], before, nil); err == nil && tr.Bottleneck != "B10" {
						t.Errorf("%s on %s already present before %v\n%s", tr.Bottleneck, tr.Server, from, before)
					}
				}
			}
		})
	}
}
