package cost

import (
	"reflect"
	"testing"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/recommender"
)

func TestAnnotate(t *testing.T) {
	costs := []Instance{
		{Instance: "a", PerHour: 4, TokensPerSecond: 1000},
		{Instance: "b", PerHour: 4, TokensPerSecond: 1000},
		{Instance: "c", PerHour: 2},
	}
	scaleIn := recommender.Recommendation{ID: "scale_in", Action: recommender.Action{Kind: recommender.KindReplicas, From: 2, To: 1, Instances: []string{"a", "b"}}}
	scaleOut := recommender.Recommendation{ID: "scale_out", Action: recommender.Action{Kind: recommender.KindReplicas, From: 2, To: 3, Instances: []string{"a", "b"}}}
	flag := recommender.Recommendation{ID: "raise_max_num_seqs", Instance: "a", Action: recommender.Action{Kind: recommender.KindFlag}}
	noTokens := recommender.Recommendation{ID: "fp8_kv_cache", Instance: "c", Action: recommender.Action{Kind: recommender.KindFlag}}
	unpriced := recommender.Recommendation{ID: "scale_out", Action: recommender.Action{Kind: recommender.KindReplicas, From: 2, To: 3, Instances: []string{"a", "x"}}}
	recs := []recommender.Recommendation{scaleIn, scaleOut, flag, noTokens, unpriced}
	Annotate(recs, costs)
	// 2 × 4/h serving 2000 tokens/s: 8/(2000×3600)×1e6 per million.
	perM := 8.0 / 7200 * 1000
	for i, want := range []*recommender.CostChange{
		{PerHour: recommender.CostEstimate{Current: 8, Estimate: 4, Change: -4}, PerMillionTokens: &recommender.CostEstimate{Current: round(perM), Estimate: round(perM / 2), Change: round(perM/2) - round(perM)}},
		{PerHour: recommender.CostEstimate{Current: 8, Estimate: 12, Change: 4}, PerMillionTokens: &recommender.CostEstimate{Current: round(perM), Estimate: round(perM * 1.5), Change: round(round(perM*1.5) - perM)}},
		{PerHour: recommender.CostEstimate{Current: 4, Estimate: 4}, PerMillionTokens: &recommender.CostEstimate{Current: round(perM), Estimate: round(perM)}},
		{PerHour: recommender.CostEstimate{Current: 2, Estimate: 2}},
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
		got.Basis = ""
		if got.PerMillionTokens != nil && want.PerMillionTokens != nil {
			// Rounded figures: compare within the rounding.
			g, w := *got.PerMillionTokens, *want.PerMillionTokens
			if abs(g.Current-w.Current) > 1e-6 || abs(g.Estimate-w.Estimate) > 1e-6 || abs(g.Change-w.Change) > 1e-5 {
				t.Errorf("%d %s: per million got %+v, want %+v", i, recs[i].ID, g, w)
			}
			got.PerMillionTokens, want.PerMillionTokens = nil, nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d %s: got %+v, want %+v", i, recs[i].ID, got, want)
		}
	}
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
