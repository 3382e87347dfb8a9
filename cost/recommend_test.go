package cost

import (
	"reflect"
	"testing"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/recommender"
)

func TestAnnotate(t *testing.T) {
	p := &Pricing{promptWeight: 0.25, currency: "EUR"}
	costs := []Instance{
		{Instance: "a", Currency: "EUR", PerHour: 4, TokensPerSecond: 1000, PromptTokensPerSecond: 800, GenerationTokensPerSecond: 200},
		{Instance: "b", Currency: "EUR", PerHour: 4, TokensPerSecond: 1000, PromptTokensPerSecond: 800, GenerationTokensPerSecond: 200},
		{Instance: "c", Currency: "EUR", PerHour: 2},
		{Instance: "d", Currency: "EUR", PerHour: 2, TokensPerSecond: 100, GenerationTokensPerSecond: 100},
	}
	scaleIn := recommender.Recommendation{ID: "scale_in", Action: recommender.Action{Kind: recommender.KindReplicas, From: 2, To: 1, Instances: []string{"a", "b"}}}
	scaleOut := recommender.Recommendation{ID: "scale_out", Action: recommender.Action{Kind: recommender.KindReplicas, From: 2, To: 3, Instances: []string{"a", "b"}}}
	flag := recommender.Recommendation{ID: "raise_max_num_seqs", Instance: "a", Action: recommender.Action{Kind: recommender.KindFlag}}
	noTokens := recommender.Recommendation{ID: "fp8_kv_cache", Instance: "c", Action: recommender.Action{Kind: recommender.KindFlag}}
	decodeOnly := recommender.Recommendation{ID: "fp8_kv_cache", Instance: "d", Action: recommender.Action{Kind: recommender.KindFlag}}
	unpriced := recommender.Recommendation{ID: "scale_out", Action: recommender.Action{Kind: recommender.KindReplicas, From: 2, To: 3, Instances: []string{"a", "x"}}}
	recs := []recommender.Recommendation{scaleIn, scaleOut, flag, noTokens, decodeOnly, unpriced}
	p.Annotate(recs, costs)
	// The pool: 8 per hour, 1600 prompt and 400 generated tokens/s.
	// Blended: 8/(2000×3600)×1e6. By direction, a prompt token weighs
	// 0.25: 8/((0.25×1600 + 400)×3600)×1e6 per million generated
	// tokens, a quarter of it per million prompt tokens, so each
	// direction carries 4 of the 8.
	blend := 8.0 / (2000 * 3600) * 1e6
	gen := 8.0 / (800 * 3600) * 1e6
	est := func(now, after float64) *recommender.CostEstimate {
		return &recommender.CostEstimate{Current: now, Estimate: after, Change: after - now}
	}
	for i, want := range []*recommender.CostChange{
		{PerHour: *est(8, 4), PerMillionTokens: est(blend, blend/2), PromptPerMillionTokens: est(gen/4, gen/8), GenerationPerMillionTokens: est(gen, gen/2)},
		{PerHour: *est(8, 12), PerMillionTokens: est(blend, blend*1.5), PromptPerMillionTokens: est(gen/4, gen*1.5/4), GenerationPerMillionTokens: est(gen, gen*1.5)},
		{PerHour: *est(4, 4), PerMillionTokens: est(blend, blend), PromptPerMillionTokens: est(gen/4, gen/4), GenerationPerMillionTokens: est(gen, gen)},
		{PerHour: *est(2, 2)},
		{PerHour: *est(2, 2), PerMillionTokens: est(2.0/(100*3600)*1e6, 2.0/(100*3600)*1e6), GenerationPerMillionTokens: est(2.0/(100*3600)*1e6, 2.0/(100*3600)*1e6)},
		nil,
	} {
		got := recs[i].Cost
		if want == nil || got == nil {
			if want != got {
				t.Errorf("%d %s: got %+v, want %+v", i, recs[i].ID, got, want)
			}
			continue
		}
		if got.Basis == "" {
			t.Errorf("%d %s: no basis", i, recs[i].ID)
		}
		if got.Currency != "EUR" {
			t.Errorf("%d %s: currency %q, want EUR", i, recs[i].ID, got.Currency)
		}
		for _, f := range []struct {
			name      string
			got, want *recommender.CostEstimate
		}{
			{"per hour", &got.PerHour, &want.PerHour},
			{"per million tokens", got.PerMillionTokens, want.PerMillionTokens},
			{"per million prompt tokens", got.PromptPerMillionTokens, want.PromptPerMillionTokens},
			{"per million generated tokens", got.GenerationPerMillionTokens, want.GenerationPerMillionTokens},
		} {
			if f.got == nil || f.want == nil {
				if (f.got == nil) != (f.want == nil) {
					t.Errorf("%d %s %s: got %+v, want %+v", i, recs[i].ID, f.name, f.got, f.want)
				}
				continue
			}
			// Rounded figures: compare within the rounding.
			if abs(f.got.Current-f.want.Current) > 1e-6 || abs(f.got.Estimate-f.want.Estimate) > 1e-6 || abs(f.got.Change-f.want.Change) > 2e-6 {
				t.Errorf("%d %s %s: got %+v, want %+v", i, recs[i].ID, f.name, *f.got, *f.want)
			}
		}
	}
	var none *Pricing
	none.Annotate(recs, costs)
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestRank(t *testing.T) {
	withChange := func(id string, change float64, priced bool) recommender.Recommendation {
		r := recommender.Recommendation{ID: id}
		if priced {
			r.Cost = &recommender.CostChange{PerHour: recommender.CostEstimate{Change: change}}
		}
		return r
	}
	in := []recommender.Recommendation{
		withChange("scale_out", 4, true),
		withChange("raise_gpu_memory_utilization", 0, true),
		withChange("investigate_errors", 0, false),
		withChange("scale_in", -4, true),
		withChange("scale_in_small", -1, true),
	}
	for _, tc := range []struct {
		prefer string
		want   []string
	}{
		{"", []string{"scale_out", "raise_gpu_memory_utilization", "investigate_errors", "scale_in", "scale_in_small"}},
		{config.PreferLatency, []string{"scale_out", "raise_gpu_memory_utilization", "investigate_errors", "scale_in", "scale_in_small"}},
		{config.PreferCost, []string{"scale_in", "scale_in_small", "raise_gpu_memory_utilization", "investigate_errors", "scale_out"}},
	} {
		recs := append([]recommender.Recommendation(nil), in...)
		for i := range recs {
			recs[i].Rank = i + 1
		}
		Rank(recs, tc.prefer)
		var got []string
		for i, r := range recs {
			got = append(got, r.ID)
			if r.Rank != i+1 {
				t.Errorf("prefer %q: %s has rank %d at %d", tc.prefer, r.ID, r.Rank, i+1)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("prefer %q: got %v, want %v", tc.prefer, got, tc.want)
		}
	}
}
