package recommender

import (
	"math"
	"testing"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

func TestSpecAlphaInvertsTokensPerStep(t *testing.T) {
	for _, k := range []int{1, 3, 5, 8} {
		for _, a := range []float64{0.05, 0.15, 0.5, 0.8} {
			if got := specAlpha(specTokens(a, k), k); math.Abs(got-a) > 1e-9 {
				t.Errorf("k=%d: α %v → %v", k, a, got)
			}
		}
	}
}

func TestSpeculativeTokens(t *testing.T) {
	spec := func(name, k, method string, length, batch, itl float64) *collector.Instance {
		return &collector.Instance{
			Instance: name, Engine: signals.EngineVLLM, Model: "m",
			Settings: settings(collector.SettingFromConfig, "num_speculative_tokens", k, "speculative_method", method),
			Signals: []signals.Value{
				sig(signals.SpecDecodeAcceptanceLength, "", length), sig(sigRunning, "", batch), sig(sigITL, p95, itl),
			},
		}
	}
	cases := []struct {
		name string
		inst *collector.Instance
		// want maps a recommendation id to its proposed value and ITL p95
		// estimate; an id absent from it must be skipped.
		want map[string][2]float64
	}{
		{
			// α = 0.15 (L = (1 − 0.15⁶)/0.85), b = 40, draft model:
			// r/E = 1.5/1.1765 at k = 5; 1.1/1.15 at k = 1 (the least of
			// 1..4); 1 with speculation off.
			name: "low acceptance with a draft model: lower to 1, which beats off",
			inst: spec("a:8000", "5", "draft_model", specTokens(0.15, 5), 40, 0.08),
			want: map[string][2]float64{
				"lower_num_speculative_tokens": {1, 0.08 * (1.1 / 1.15) / (1.5 / specTokens(0.15, 5))},
			},
		},
		{
			// α = 0.8, b = 8, n-gram: r(4) = 1.04, E(4) = 3.3616: speculation
			// pays at every k; k = 4 is the best of 1..4.
			name: "high acceptance at low load: nothing to change",
			inst: spec("b:8000", "4", "ngram", specTokens(0.8, 4), 8, 0.08),
			want: map[string][2]float64{},
		},
		{
			// b = 512: the verify pass is compute-bound, r(k) = k + 1 + 0.01k,
			// so even α = 0.6 loses to a plain step at every k (k = 1:
			// 2.01/1.6 > 1): off.
			name: "large batch: compute-bound verify makes speculation a loss",
			inst: spec("c:8000", "3", "ngram", specTokens(0.6, 3), 512, 0.1),
			want: map[string][2]float64{
				"disable_speculative_decoding": {0, 0.1 / (4.03 / specTokens(0.6, 3))},
			},
		},
	}
	ids := []string{"lower_num_speculative_tokens", "disable_speculative_decoding"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTestRecommender(t, config.DefaultRecommenderConfig())
			rep := r.Analyze(testNow, Input{
				Instances: []*collector.Instance{c.inst},
				Findings:  []Finding{finding("B11", "LLMSpeculativeDecodingMismatch", c.inst, 0.03, ids...)},
			})
			got := map[string]Recommendation{}
			for _, rec := range rep.Recommendations {
				got[rec.ID] = rec
			}
			for _, id := range ids {
				w, want := c.want[id]
				rec, ok := got[id]
				if ok != want {
					t.Fatalf("%s produced = %v, want %v (skipped: %+v)", id, ok, want, rep.Skipped)
				}
				if !ok {
					continue
				}
				if rec.Action.Proposed != fmtNum(w[0]) {
					t.Errorf("%s proposes %s, want %s", id, rec.Action.Proposed, fmtNum(w[0]))
				}
				if len(rec.Effects) != 1 || rec.Effects[0].Estimate == nil || math.Abs(*rec.Effects[0].Estimate-w[1]) > 1e-6 {
					t.Errorf("%s effects %+v, want ITL p95 estimate %v", id, rec.Effects, w[1])
				}
			}
		})
	}
}
