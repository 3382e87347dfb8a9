package recommender

import (
	"reflect"
	"testing"

	"github.com/optiinfra/perfagent/collector"
)

func TestAnalyzeStrategies(t *testing.T) {
	// B6: three replicas, each λ = 1/s and R = 10, max_num_seqs 64.
	var idle []*collector.Instance
	for _, n := range []string{"a:8000", "b:8000", "c:8000"} {
		idle = append(idle, &collector.Instance{
			Instance: n, Engine: collector.EngineVLLM, Model: "m",
			Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "64"),
			Signals: []collector.SignalValue{
				sig(sigRPS, "", 1), sig(sigRunning, "", 10), sig(sigWaiting, "", 0), sig(sigKVUsage, "", 0.2),
				sig(sigTTFT, p95, 0.3), sig(sigQueue, p95, 0.05),
			},
		})
	}
	itl := &collector.Instance{
		Instance: "v:8000", Engine: collector.EngineVLLM, Model: "m",
		Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "256", "max_model_len", "32768", "long_prefill_token_threshold", "0", "enable_prefix_caching", "False"),
		Signals:  []collector.SignalValue{sig(sigRunning, "", 200), sig(sigITL, p95, 0.07), sig(sigTTFT, "0.99", 4), sig(sigPrefixHit, "", 0.05)},
	}
	tgi := &collector.Instance{
		Instance: "t:80", Engine: collector.EngineTGI, Model: "m",
		Settings: settings(collector.SettingFromProbe, "max_batch_total_tokens", "100000", "max_concurrent_requests", "32"),
		Signals:  []collector.SignalValue{sig(sigRunning, "", 32), sig(sigWaiting, "", 10), sig(sigPromptMean, "", 800), sig(sigGenMean, "", 200)},
	}
	sg := &collector.Instance{
		Instance: "s:30000", Engine: collector.EngineSGLang, Model: "m",
		Settings: settings(collector.SettingFromProbe, "schedule_conservativeness", "1.0"),
		Signals:  []collector.SignalValue{sig(sigKVUsage, "", 0.6), sig(sigWaiting, "", 12), sig(sigErrorRatio, "", 0.08)},
	}
	slow := &collector.Instance{
		Instance: "slow:8000", Engine: collector.EngineVLLM, Model: "m",
		Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "256"),
		Signals:  []collector.SignalValue{sig(sigRunning, "", 100), sig(sigITL, p95, 0.09)},
	}
	runAnalyze(t, []analyzeCase{
		{
			name: "B6 scale in to the fewest replicas that meet the queue target",
			cfg:  DefaultConfig(),
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
			want: Report{Recommendations: []Recommendation{{
				ID: "scale_in", Rank: 1, Engine: "vllm", Model: "m", Bottlenecks: []string{"B6"},
				Action: Action{Kind: KindReplicas, From: 3, To: 1, Instances: []string{"a:8000", "b:8000", "c:8000"}},
				Effects: []Effect{
					{Signal: sigKVUsage, Direction: Increase, Current: ptr(0.2), Estimate: ptr(0.6)},
					{Signal: sigQueue, Quantile: p95, Direction: Increase, Current: ptr(0.05), Estimate: ptr(0.05)},
					{Signal: sigWaiting, Direction: Increase, Current: ptr(0), Estimate: ptr(round(3*ErlangC(64, 30)/(6.4-3)-1*ErlangC(64, 10)/(6.4-1), 6))},
				},
				Confidence: 0.8,
				Factors: []Factor{
					{Name: "method", Value: 0.8, Reason: "M/M/c assumes Poisson arrivals and exponential service"},
					{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
				},
				Risk: "Less headroom for bursts; scaling back out takes minutes.",
				Evidence: []Evidence{
					fev("B6", "LLMUnderutilized", "0.2"),
					evq("a:8000 "+sigRPS, "", "1"), evq("a:8000 "+sigRunning, "", "10"), evq("a:8000 "+sigWaiting, "", "0"), evq("a:8000 "+sigKVUsage, "", "0.2"),
					ev("a:8000 max_num_seqs", "64", "metrics"),
					evq("b:8000 "+sigRPS, "", "1"), evq("b:8000 "+sigRunning, "", "10"), evq("b:8000 "+sigWaiting, "", "0"), evq("b:8000 "+sigKVUsage, "", "0.2"),
					ev("b:8000 max_num_seqs", "64", "metrics"),
					evq("c:8000 "+sigRPS, "", "1"), evq("c:8000 "+sigRunning, "", "10"), evq("c:8000 "+sigWaiting, "", "0"), evq("c:8000 "+sigKVUsage, "", "0.2"),
					ev("c:8000 max_num_seqs", "64", "metrics"),
					evq("a:8000 "+sigTTFT, p95, "0.3"), evq("a:8000 "+sigQueue, p95, "0.05"),
					evq("b:8000 "+sigTTFT, p95, "0.3"), evq("b:8000 "+sigQueue, p95, "0.05"),
					evq("c:8000 "+sigTTFT, p95, "0.3"), evq("c:8000 "+sigQueue, p95, "0.05"),
				},
				Rationale: "Little's law: S = ΣR 30 / Σλ 3/s = 10s per request; c = max_num_seqs of a:8000 = 64; target p95 queue wait 0.25s (TTFT target 0.5 − (TTFT p95 − queue p95) 0.25). " +
					"The fewest replicas with ρ = λS/(n·c) ≤ 0.9 and Erlang-C p95 wait ≤ target: n = 1 (ρ = 0.4688, p95 wait 0s). Mean KV usage 0.2 × 3 / 1 = 0.6.",
				Notes: []string{
					"no ITL fit for a:8000: 0 history points, 5 needed",
					"no ITL fit for b:8000: 0 history points, 5 needed",
					"no ITL fit for c:8000: 0 history points, 5 needed",
				},
				Time: testNow,
			}}},
		},
		{
			name: "B5 caps the batch at B*, B7 turns prefix caching on; ranked by triage order",
			cfg:  DefaultConfig(),
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
			want: Report{Recommendations: []Recommendation{
				{
					ID: "enable_prefix_caching", Rank: 1, Instance: "v:8000", Engine: "vllm", Model: "m", Bottlenecks: []string{"B7"},
					Action:     Action{Kind: KindFlag, Flag: "--enable-prefix-caching", Setting: "enable_prefix_caching", Current: "False", Proposed: "True"},
					Effects:    []Effect{{Signal: sigPrefixHit, Direction: Increase, Current: ptr(0.05)}},
					Confidence: 0.8,
					Factors: []Factor{
						{Name: "method", Value: 0.8, Reason: "restores the documented default; the gain depends on shared prefixes"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk:      "Cached prefixes occupy free KV blocks (evicted on demand); hashing costs a little CPU.",
					Evidence:  []Evidence{fev("B7", "LLMPrefixCacheMiss", "0.05"), ev("enable_prefix_caching", "False", "metrics"), evq(sigPrefixHit, "", "0.05")},
					Rationale: "enable_prefix_caching=False: every prompt is prefilled in full; with caching on, prefill tokens saved ≈ the hit ratio (tuning.md §8.1 B7).",
					Time:      testNow,
				},
				{
					ID: "lower_max_num_seqs", Rank: 2, Instance: "v:8000", Engine: "vllm", Model: "m", Bottlenecks: []string{"B5"},
					Action: Action{Kind: KindFlag, Flag: "--max-num-seqs", Setting: "max_num_seqs", Current: "256", Proposed: "115", Unit: "requests"},
					Effects: []Effect{
						{Signal: sigRunning, Direction: Decrease, Current: ptr(200), Estimate: ptr(115)},
						{Signal: sigITL, Quantile: p95, Direction: Decrease, Current: ptr(0.07), Estimate: ptr(0.0499)},
					},
					Confidence: 0.2,
					Factors: []Factor{
						{Name: "data", Value: 0.2, Reason: "ITL fit R² 1 × min(1, 6 points / 30)"},
						{Name: "range", Value: 1, Reason: "B* 115 against observed batch 40..240"},
						{Name: "method", Value: 1, Reason: "KV concurrency and the ITL fit (tuning.md §6)"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk: "Lower throughput per GPU; requests queue instead (see B2).",
					Evidence: []Evidence{
						fev("B5", "LLMDecodeBoundITL", "0.07"), ev("max_num_seqs", "256", "metrics"),
						{Name: "itl_fit", Value: "α=0.02 β=0.00026 R²=1 n=6 batch 40..240", Source: "history", Time: testNow.Add(-15 * 1e9)},
						evq(sigRunning, "", "200"), evq(sigITL, p95, "0.07"),
					},
					Rationale: "Proposed = min(B* = ⌊(ITL target 0.05 − α 0.02) / β 0.00026⌋ = 115). Predicted ITL at 115 = 0.0499.",
					Time:      testNow,
				},
				{
					ID: "long_prefill_threshold", Rank: 3, Instance: "v:8000", Engine: "vllm", Model: "m", Bottlenecks: []string{"B5"},
					Action: Action{Kind: KindFlag, Flag: "--long-prefill-token-threshold", Setting: "long_prefill_token_threshold", Current: "0", Proposed: "1310", Unit: "tokens"},
					Effects: []Effect{
						{Signal: sigTTFT, Quantile: "0.99", Direction: Decrease, Current: ptr(4)},
						{Signal: sigITL, Quantile: p95, Direction: Decrease, Current: ptr(0.07)},
					},
					Confidence: 0.5,
					Factors: []Factor{
						{Name: "method", Value: 0.5, Reason: "vLLM's default rule, no model of the effect size"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk: "Long prompts take more steps, so their TTFT rises.",
					Evidence: []Evidence{
						fev("B5", "LLMDecodeBoundITL", "0.07"), ev("long_prefill_token_threshold", "0", "metrics"), ev("max_model_len", "32768", "metrics"),
						evq(sigTTFT, "0.99", "4"), evq(sigITL, p95, "0.07"),
					},
					Rationale: "⌊0.04 × max_model_len 32768⌋ = 1310 tokens, the threshold vLLM applies itself when partial prefills are on (tuning.md §2.2); 0 means no cap.",
					Time:      testNow,
				},
			}},
		},
		{
			name: "TGI raises the admission limit within the token budget; SGLang admits more; errors first",
			cfg:  DefaultConfig(),
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
			want: Report{Recommendations: []Recommendation{
				{
					ID: "investigate_errors", Rank: 1, Instance: "s:30000", Engine: "sglang", Model: "m", Bottlenecks: []string{"B9"},
					Action:     Action{Kind: KindManual, Note: "Check aborted requests and the server log for retractions and OOM."},
					Effects:    []Effect{{Signal: sigErrorRatio, Direction: Decrease, Current: ptr(0.08)}},
					Confidence: 0.5,
					Factors: []Factor{
						{Name: "method", Value: 0.5, Reason: "operational change, no model of its effect"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk:      "None by itself; aborts are often client time-outs caused by queueing (B2) or preemption (B1).",
					Evidence:  []Evidence{fev("B9", "LLMRequestErrors", "0.08"), evq(sigErrorRatio, "", "0.08")},
					Rationale: "Find the cause of failed and aborted requests before tuning anything else. Detected: B9 (LLMRequestErrors = 0.08).",
					Time:      testNow,
				},
				{
					ID: "raise_max_concurrent_requests", Rank: 2, Instance: "t:80", Engine: "tgi", Model: "m", Bottlenecks: []string{"B3"},
					Action: Action{Kind: KindFlag, Flag: "--max-concurrent-requests", Setting: "max_concurrent_requests", Current: "32", Proposed: "90", Unit: "requests"},
					Effects: []Effect{
						{Signal: sigRunning, Direction: Increase, Current: ptr(32), Estimate: ptr(42)},
						{Signal: sigWaiting, Direction: Decrease, Current: ptr(10), Estimate: ptr(0)},
					},
					Confidence: 0.7,
					Factors: []Factor{
						{Name: "data", Value: 0.7, Reason: "no ITL fit: the ITL target is not checked"},
						{Name: "method", Value: 1, Reason: "KV concurrency and the ITL fit (tuning.md §6)"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk: "More admitted requests reserve more KV up front; past the token budget they queue inside TGI instead of being rejected.",
					Evidence: []Evidence{
						fev("B3", "LLMConcurrencyCapBound", "32"), ev("max_concurrent_requests", "32", "probe"),
						ev("max_batch_total_tokens", "100000", "probe"), evq(sigPromptMean, "", "800"), evq(sigGenMean, "", "200"),
						evq(sigRunning, "", "32"), evq(sigWaiting, "", "10"),
					},
					Rationale: "Proposed = min(C_kv = ⌊0.9 × N_kv 100000 / r̄ 1000⌋ = 90, r̄ = prompt 800 + output 200 = 1000 tokens (TGI reserves the whole request)). Running min(R 32 + W 10, 90) = 42.",
					Notes:     []string{"no ITL fit for t:80: 0 history points, 5 needed"},
					Time:      testNow,
				},
				{
					ID: "lower_schedule_conservativeness", Rank: 3, Instance: "s:30000", Engine: "sglang", Model: "m", Bottlenecks: []string{"B2"},
					Action: Action{Kind: KindFlag, Flag: "--schedule-conservativeness", Setting: "schedule_conservativeness", Current: "1", Proposed: "0.66"},
					Effects: []Effect{
						{Signal: sigKVUsage, Direction: Increase, Current: ptr(0.6), Estimate: ptr(0.9)},
						{Signal: sigWaiting, Direction: Decrease, Current: ptr(12)},
					},
					Confidence: 0.8,
					Factors: []Factor{
						{Name: "method", Value: 0.8, Reason: "admission estimate scaled proportionally to usage"},
						{Name: "inputs", Value: 1, Reason: "every input came from the engine or its signals"},
					},
					Risk:      "Retractions when requests run longer than estimated (B1).",
					Evidence:  []Evidence{fev("B2", "LLMRequestQueueing", "12"), ev("schedule_conservativeness", "1.0", "probe"), evq(sigKVUsage, "", "0.6"), evq(sigWaiting, "", "12")},
					Rationale: "Admission reserves ∝ conservativeness; usage 0.6 against the 0.9 target gives max(0.3, ⌊1 × 0.6 / 0.9⌋₀.₀₁) = 0.66.",
					Time:      testNow,
				},
			}},
		},
		{
			name: "B5 when α alone misses the ITL target: nothing to cap",
			cfg:  DefaultConfig(),
			in: Input{
				Instances: []*collector.Instance{slow},
				History:   map[string][]Point{"slow:8000": linearHistory(0.06, 0.0001, 20, 40, 60, 80, 100)},
				Findings:  []Finding{finding("B5", "LLMDecodeBoundITL", slow, 0.09, "lower_max_num_seqs")},
			},
			// B* = ⌊(0.05 − 0.06)/0.0001⌋ = −100 < 1.
			want: Report{Skipped: []Skip{{
				ID: "lower_max_num_seqs", Instance: "slow:8000", Engine: "vllm", Model: "m",
				Reason: "no bound could be computed: the ITL target 0.05s is below α = 0.06s: no batch size meets it",
			}}},
		},
	})
}

// TestReplicasUtilizationMargin checks that the 10 % stability margin, not
// the queue-wait target, binds when the target is loose.
func TestReplicasUtilizationMargin(t *testing.T) {
	var insts []*collector.Instance
	for _, n := range []string{"a:8000", "b:8000", "c:8000"} {
		insts = append(insts, &collector.Instance{
			Instance: n, Engine: collector.EngineVLLM, Model: "m",
			Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "10"),
			Signals:  []collector.SignalValue{sig(sigRPS, "", 9.2/3), sig(sigRunning, "", 9.2/3), sig(sigWaiting, "", 0)},
		})
	}
	r := newTestRecommender(t, DefaultConfig())
	recs := r.Recommend(testNow, Input{
		Instances:  insts,
		Objectives: Objectives{QueueWaitP95Seconds: 100},
		Findings:   []Finding{finding("B6", "LLMUnderutilized", insts[0], 0.1, "scale_in")},
	})
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
