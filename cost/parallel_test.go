package cost

import (
	"testing"

	"github.com/optiinfra/perfagent/recommender"
)

func TestGPUScale(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    recommender.Action
		want float64
	}{
		{"vLLM 1 → 4", recommender.Action{Kind: recommender.KindFlag, Setting: "tensor_parallel_size", Current: "1", Proposed: "4"}, 4},
		{"SGLang 2 → 8", recommender.Action{Kind: recommender.KindFlag, Setting: "tp_size", Current: "2", Proposed: "8"}, 4},
		{"TGI 1 → 2", recommender.Action{Kind: recommender.KindFlag, Setting: "num_shard", Current: "1", Proposed: "2"}, 2},
		{"other flag", recommender.Action{Kind: recommender.KindFlag, Setting: "max_num_seqs", Current: "16", Proposed: "64"}, 1},
		{"unreadable", recommender.Action{Kind: recommender.KindFlag, Setting: "num_shard", Current: "?", Proposed: "2"}, 1},
	} {
		if got := GPUScale(tc.a); got != tc.want {
			t.Errorf("%s: GPUScale = %v, want %v", tc.name, got, tc.want)
		}
	}
}
