package recommender

import (
	"math"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

func TestEnableSpeculative(t *testing.T) {
	inst := func(name, engine string, batch, itl float64, kv ...string) *collector.Instance {
		return &collector.Instance{
			Instance: name, Engine: engine, Model: "m",
			Settings: settings(collector.SettingFromConfig, kv...),
			Signals:  []signals.Value{sig(sigRunning, "", batch), sig(sigITL, p95, itl)},
		}
	}
	// At a batch of at most 16 the verify pass of 6 tokens per sequence
	// stays memory-bound: r(k) = 1 + 0.01k, and at α = 0.5 r/E is least at
	// k = 5 of 1..5 (1.05/1.96875 against 1.04/1.9375 at k = 4).
	lowLoad := 0.07 * 1.05 / specTokens(0.5, 5)
	cases := []struct {
		name string
		inst *collector.Instance
		// proposed is the wanted draft count, 0 when the lever must be skipped.
		proposed float64
		estimate float64
		flags    string
	}{
		{
			name: "vLLM at a batch of 4, off by default: n-gram with 5 drafts", inst: inst("a:8000", signals.EngineVLLM, 4, 0.07),
			proposed: 5, estimate: lowLoad, flags: `--speculative-config '{"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4}'`,
		},
		{
			name: "vLLM at the batch limit", inst: inst("b:8000", signals.EngineVLLM, 16, 0.07, "num_speculative_tokens", "0"),
			proposed: 5, estimate: lowLoad, flags: `"num_speculative_tokens": 5`,
		},
		{
			name: "TGI at a batch of 2", inst: inst("c:8000", signals.EngineTGI, 2, 0.07),
			proposed: 5, estimate: lowLoad, flags: "--speculate 5",
		},
		{
			name: "SGLang at a batch of 2", inst: inst("d:8000", signals.EngineSGLang, 2, 0.07),
			proposed: 5, estimate: lowLoad, flags: "--speculative-algorithm NGRAM --speculative-num-draft-tokens 5",
		},
		{name: "a batch of 40 would pay drafts with throughput", inst: inst("e:8000", signals.EngineVLLM, 40, 0.11)},
		{name: "just over the batch limit", inst: inst("f:8000", signals.EngineVLLM, 16.5, 0.07)},
		{name: "already on: lower or disable judge it", inst: inst("g:8000", signals.EngineVLLM, 4, 0.07, "num_speculative_tokens", "3")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRecommender(t, config.DefaultRecommenderConfig())
			rep := r.Analyze(testNow, Input{
				Instances: []*collector.Instance{c.inst},
				Findings:  []Finding{finding("B5", "LLMDecodeBoundITL", c.inst, 0.07, "enable_speculative_decoding")},
			})
			var rec *Recommendation
			for i := range rep.Recommendations {
				if rep.Recommendations[i].ID == "enable_speculative_decoding" {
					rec = &rep.Recommendations[i]
				}
			}
			if (rec != nil) != (c.proposed > 0) {
				t.Fatalf("produced = %v, want %v (skipped: %+v)", rec != nil, c.proposed > 0, rep.Skipped)
			}
			if rec == nil {
				return
			}
			if rec.Action.Proposed != fmtNum(c.proposed) || rec.Action.Current != "0" {
				t.Errorf("action %s → %s, want 0 → %s", rec.Action.Current, rec.Action.Proposed, fmtNum(c.proposed))
			}
			if len(rec.Effects) != 1 || rec.Effects[0].Estimate == nil || math.Abs(*rec.Effects[0].Estimate-c.estimate) > 1e-6 {
				t.Errorf("effects %+v, want ITL p95 estimate %v", rec.Effects, c.estimate)
			}
			if !strings.Contains(strings.Join(rec.Notes, "\n"), c.flags) {
				t.Errorf("notes %q do not give %s", rec.Notes, c.flags)
			}
		})
	}
}
