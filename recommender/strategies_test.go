package recommender

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

func TestAnalyzeStrategies(t *testing.T) {
	// B6: three replicas, each λ = 1/s and R = 10, max_num_seqs 64.
	var idle []*collector.Instance
	for _, n := range []string{"a:8000", "b:8000", "c:8000"} {
		idle = append(idle, &collector.Instance{
			Instance: n, Engine: signals.EngineVLLM, Model: "m",
			Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "64"),
			Signals: []signals.Value{
				sig(sigRPS, "", 1), sig(sigRunning, "", 10), sig(sigWaiting, "", 0), sig(sigKVUsage, "", 0.2),
				sig(sigTTFT, p95, 0.3), sig(sigQueue, p95, 0.05),
			},
		})
	}
	itl := &collector.Instance{
		Instance: "v:8000", Engine: signals.EngineVLLM, Model: "m",
		Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "256", "max_model_len", "32768", "long_prefill_token_threshold", "0", "enable_prefix_caching", "False"),
		Signals:  []signals.Value{sig(sigRunning, "", 200), sig(sigITL, p95, 0.07), sig(sigTTFT, "0.99", 4), sig(sigPrefixHit, "", 0.05)},
	}
	tgi := &collector.Instance{
		Instance: "t:80", Engine: signals.EngineTGI, Model: "m",
		Settings: settings(collector.SettingFromProbe, "max_batch_total_tokens", "100000", "max_concurrent_requests", "32"),
		Signals:  []signals.Value{sig(sigRunning, "", 32), sig(sigWaiting, "", 10), sig(sigPromptMean, "", 800), sig(sigGenMean, "", 200)},
	}
	sg := &collector.Instance{
		Instance: "s:30000", Engine: signals.EngineSGLang, Model: "m",
		Settings: settings(collector.SettingFromProbe, "schedule_conservativeness", "1.0"),
		Signals:  []signals.Value{sig(sigKVUsage, "", 0.6), sig(sigWaiting, "", 12), sig(sigErrorRatio, "", 0.08)},
	}
	slow := &collector.Instance{
		Instance: "slow:8000", Engine: signals.EngineVLLM, Model: "m",
		Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "256"),
		Signals:  []signals.Value{sig(sigRunning, "", 100), sig(sigITL, p95, 0.09)},
	}
	runAnalyze(t, []analyzeCase{
		{
			name: "B6 scale in to the fewest replicas that meet the queue target",
			cfg:  config.DefaultRecommenderConfig(),
			in: Input{
				Instances: idle,
				Findings: []Finding{
					finding("B6", "LLMUnderutilized", idle[0], 0.2, "scale_in"),
					finding("B6", "LLMUnderutilized", idle[2], 0.2, "scale_in"),
				},
			},
			// S = ΣR 30 / Σλ 3 = 10 s; c = 64. Target = 0.5 − (0.3 − 0.05) = 0.25 s.
			// n = 1: a = 3 × 10 = 30 Erlangs, ρ = 30/64 = 0.46875 ≤ 0.9; C(64, 30) < 0.05, so the p95 wait is 0.
			// Now (n = 3, a = 10) the model also predicts a p95 wait of 0, so the observed 0.05 s stays.
			// Waiting: 0 + Lq(1) − Lq(3), Lq = λ·C/(cμ − λ): 3 C(64, 30)/(6.4 − 3) − 1 C(64, 10)/(6.4 − 1).
			// KV usage 0.2 × 3 / 1 = 0.6.
			// Confidence: method 0.8 × inputs 1.
			golden:  "b6_scale_in",
			actions: []string{"scale_in 3 → 1"},
		},
		{
			name: "B5 caps the batch at B*, B7 turns prefix caching on; ranked by triage order",
			cfg:  config.DefaultRecommenderConfig(),
			in: Input{
				Instances: []*collector.Instance{itl},
				History:   map[string][]Point{"v:8000": linearHistory(0.02, 0.00026, 40, 80, 120, 160, 200, 240)},
				Findings: []Finding{
					finding("B5", "LLMDecodeBoundITL", itl, 0.07, "lower_max_num_seqs", "long_prefill_threshold"),
					finding("B7", "LLMPrefixCacheMiss", itl, 0.05, "enable_prefix_caching"),
				},
			},
			// B* = ⌊(0.05 − 0.02)/0.00026⌋ = ⌊115.38⌋ = 115 < 256, inside 40..240; ITL 0.02 + 0.00026 × 115 = 0.0499.
			// Data 1 × 6/30 = 0.2. Threshold ⌊0.04 × 32768⌋ = ⌊1310.72⌋ = 1310.
			golden:  "b5_b7_batch_cap_prefix_caching",
			actions: []string{"enable_prefix_caching False → True", "lower_max_num_seqs 256 → 115", "long_prefill_threshold 0 → 1310"},
		},
		{
			name: "TGI raises the admission limit within the token budget; SGLang admits more; errors first",
			cfg:  config.DefaultRecommenderConfig(),
			in: Input{
				Instances: []*collector.Instance{tgi, sg},
				Findings: []Finding{
					finding("B3", "LLMConcurrencyCapBound", tgi, 32, "raise_max_concurrent_requests"),
					finding("B2", "LLMRequestQueueing", sg, 12, "lower_schedule_conservativeness"),
					finding("B9", "LLMRequestErrors", sg, 0.08, "investigate_errors"),
				},
			},
			// TGI: r = 800 + 200 = 1000 (reserved up front); C = ⌊0.9 × 100000 / 1000⌋ = 90 > 32 running.
			// No fit: data 0.7. Running min(32 + 10, 90) = 42, waiting max(0, 42 − 90) = 0.
			// SGLang: max(0.3, ⌊1.0 × 0.6 / 0.9 × 100⌋ / 100) = 0.66.
			// Order: B9 (rank 0), B3 (rank 3), B2 (rank 5).
			golden:  "tgi_sglang_admission_errors_first",
			actions: []string{"investigate_errors", "raise_max_concurrent_requests 32 → 90", "lower_schedule_conservativeness 1 → 0.66"},
		},
		{
			name: "B13 doubles the processes in front of the engine, from the default or the reported count",
			cfg:  config.DefaultRecommenderConfig(),
			in: Input{
				Instances: []*collector.Instance{
					{Instance: "f:8000", Engine: signals.EngineVLLM, Model: "m", Signals: []signals.Value{sig(signals.FrontendGap, "", 0.4)}},
					{Instance: "f:80", Engine: signals.EngineTGI, Model: "m", Settings: settings(collector.SettingFromConfig, "validation_workers", "4"), Signals: []signals.Value{sig(signals.FrontendGap, "", 0.2)}},
				},
				Findings: []Finding{
					finding("B13", "LLMFrontendGap", &collector.Instance{Instance: "f:8000", Engine: signals.EngineVLLM, Model: "m"}, 0.2, "raise_frontend_workers"),
					finding("B13", "LLMFrontendGap", &collector.Instance{Instance: "f:80", Engine: signals.EngineTGI, Model: "m"}, 0.15, "raise_frontend_workers"),
				},
			},
			// vLLM: --api-server-count not reported, default 1 → 2; TGI: 4 → 8,
			// first because its current value is known, not a default.
			golden:  "b13_frontend_workers",
			actions: []string{"raise_frontend_workers 4 → 8", "raise_frontend_workers 1 → 2"},
		},
		{
			name: "B5 when α alone misses the ITL target: nothing to cap",
			cfg:  config.DefaultRecommenderConfig(),
			in: Input{
				Instances: []*collector.Instance{slow},
				History:   map[string][]Point{"slow:8000": linearHistory(0.06, 0.0001, 20, 40, 60, 80, 100)},
				Findings:  []Finding{finding("B5", "LLMDecodeBoundITL", slow, 0.09, "lower_max_num_seqs")},
			},
			// B* = ⌊(0.05 − 0.06)/0.0001⌋ = −100 < 1.
			golden: "b5_alpha_misses_target",
		},
	})
}

// TestReplicasUtilizationMargin checks that the 10 % stability margin, not
// the queue-wait target, binds when the target is loose.
func TestReplicasUtilizationMargin(t *testing.T) {
	var insts []*collector.Instance
	for _, n := range []string{"a:8000", "b:8000", "c:8000"} {
		insts = append(insts, &collector.Instance{
			Instance: n, Engine: signals.EngineVLLM, Model: "m",
			Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "10"),
			Signals:  []signals.Value{sig(sigRPS, "", 9.2/3), sig(sigRunning, "", 9.2/3), sig(sigWaiting, "", 0)},
		})
	}
	r := newTestRecommender(t, config.DefaultRecommenderConfig())
	recs := r.Analyze(testNow, Input{
		Instances:  insts,
		Objectives: config.Objectives{QueueWaitP95Seconds: 100},
		Findings:   []Finding{finding("B6", "LLMUnderutilized", insts[0], 0.1, "scale_in")},
	}).Recommendations
	// S = 9.2 / 9.2 = 1 s, c = 10. One replica: ρ = 9.2/10 = 0.92 > 0.9, although its p95 wait,
	// ln(C(10, 9.2)/0.05)/(10 − 9.2) ≈ 3.35 s, meets 100 s. Two: ρ = 0.46, C(10, 4.6) ≈ 0.0217 < 0.05,
	// so the p95 wait is 0; waiting 0 + Lq(2) − Lq(3) with Lq(n) = (9.2/n) C(10, 9.2/n)/(10 − 9.2/n).
	if len(recs) != 1 {
		t.Fatalf("got %+v", recs)
	}
	got := recs[0]
	if got.Action.From != 3 || got.Action.To != 2 {
		t.Errorf("replicas %d → %d, want 3 → 2", got.Action.From, got.Action.To)
	}
	want := []Effect{
		{Signal: sigWaiting, Direction: Increase, Current: ptr(0), Estimate: ptr(round(4.6*ErlangC(10, 4.6)/(10-4.6)-9.2/3*ErlangC(10, 9.2/3)/(10-9.2/3), 6))},
	}
	if g := normalize([]Recommendation{{Effects: got.Effects}})[0].Effects; !reflect.DeepEqual(g, normalize([]Recommendation{{Effects: want}})[0].Effects) {
		t.Errorf("effects %+v, want %+v", g, want)
	}
	if c := ErlangC(10, 4.6); c >= 0.05 || c < 0.02 {
		t.Errorf("C(10, 4.6) = %v, expected about 0.0217", c)
	}
}

// TestReplicasBoundedUnderOverload checks that scale_out sizes saturated
// replicas from the offered load and their measured throughput, not from
// an M/M/c model whose service time was measured at a batch larger than
// c, and never more than doubles the replicas in one change.
func TestReplicasBoundedUnderOverload(t *testing.T) {
	// ITL = 0.02 + 0.000565·batch: B* = ⌊0.03 / 0.000565⌋ = 53, far below
	// the 490 running, so the M/M/c count alone is about 12 per replica.
	const alpha, beta = 0.02, 0.000565
	for _, tc := range []struct {
		name              string
		n                 int
		rps, running      float64
		waiting           float64
		age               time.Duration
		want              int
		rationale         []string
		unstableEstimates bool
	}{
		{
			// Offered 95 + 7500/300 = 120/s; ⌈120 / (0.9 × 95)⌉ = 2.
			name: "one saturated replica: offered load over its capacity",
			n:    1, rps: 95, running: 490, waiting: 7500, age: 5 * time.Minute, want: 2,
			rationale: []string{"n = 12", "saturated", "throughput 95/s + queue growth 7500 waiting / 300s = 120/s", "= 2 replicas"},
		},
		{
			// Offered 95 + 60000/300 = 295/s needs ⌈295/85.5⌉ = 4; the step stops at 2,
			// where the queue model is still unstable: no estimate.
			name: "a load far above capacity: at most doubling",
			n:    1, rps: 95, running: 490, waiting: 60000, age: 5 * time.Minute, want: 2,
			rationale:         []string{"= 4 replicas", "At most twice the replicas per change (1 → 2)"},
			unstableEstimates: true,
		},
		{
			// Offered 4 × 95 + 6000/300 = 400/s; ⌈400 / (0.9 × 95)⌉ = 5, below 8.
			name: "four saturated replicas: one more",
			n:    4, rps: 95, running: 490, waiting: 6000, age: 5 * time.Minute, want: 5,
			rationale: []string{"= 400/s", "= 5 replicas"},
		},
		{
			// Not saturated (no queue, running 300 < 0.9 × 1024): M/M/c needs
			// ⌈30 × 10 / (0.9 × 53)⌉ = 7 at least; the step stops at 2,
			// which the model still finds unstable.
			name: "not saturated: the model's count, at most doubled",
			n:    1, rps: 30, running: 300, waiting: 0, age: 5 * time.Minute, want: 2,
			rationale:         []string{"At most twice the replicas per change (1 → 2)"},
			unstableEstimates: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var insts []*collector.Instance
			history := map[string][]Point{}
			for i := range tc.n {
				name := fmt.Sprintf("r%d:8000", i)
				insts = append(insts, &collector.Instance{
					Instance: name, Engine: signals.EngineVLLM, Model: "m",
					Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "1024"),
					Signals: []signals.Value{
						sig(sigRPS, "", tc.rps), sig(sigRunning, "", tc.running), sig(sigWaiting, "", tc.waiting/float64(tc.n)),
						sig(sigQueue, p95, 30),
					},
				})
				history[name] = linearHistory(alpha, beta, 100, 200, 300, 400, 500)
			}
			f := finding("B2", "LLMRequestQueueing", insts[0], 1, "scale_out")
			f.Since = testNow.Add(-tc.age)
			recs := newTestRecommender(t, config.DefaultRecommenderConfig()).Analyze(testNow, Input{
				Instances:  insts,
				History:    history,
				Objectives: config.Objectives{QueueWaitP95Seconds: 0.2},
				Findings:   []Finding{f},
			}).Recommendations
			if len(recs) != 1 {
				t.Fatalf("got %+v", recs)
			}
			got := recs[0]
			if got.Action.From != tc.n || got.Action.To != tc.want {
				t.Errorf("replicas %d → %d, want %d → %d; rationale: %s", got.Action.From, got.Action.To, tc.n, tc.want, got.Rationale)
			}
			for _, s := range tc.rationale {
				if !strings.Contains(got.Rationale, s) {
					t.Errorf("rationale lacks %q: %s", s, got.Rationale)
				}
			}
			for _, e := range got.Effects {
				if (e.Estimate == nil) != tc.unstableEstimates {
					t.Errorf("effect %s estimate %v, want none only when the proposed count is still overloaded", e.Signal, e.Estimate)
				}
			}
		})
	}
}
