package recommender

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	perfagenttest "github.com/optiinfra/perfagent/internal/testutil"
)

func metricsFixture() []Recommendation {
	return []Recommendation{
		{
			ID: "raise_gpu_memory_utilization", Instance: "gpu-0:8000", Engine: "vllm", Model: "m", Confidence: 0.9,
			Action:  Action{Kind: KindFlag, Flag: "--gpu-memory-utilization", Current: "0.9", Proposed: "0.95"},
			Effects: []Effect{{Signal: "llm_kv_cache_usage_ratio", Direction: "decrease", Estimate: ptr(0.8)}, {Signal: "llm_preemptions_per_second", Direction: "decrease"}},
		},
		{ID: "scale_out", Engine: "tgi", Model: "m", Confidence: 0.8, Action: Action{Kind: KindReplicas, From: 1, To: 2}},
		{ID: "investigate_errors", Instance: "gpu-1:8000", Engine: "vllm", Model: "m", Confidence: 0.5, Action: Action{Kind: KindManual, Note: "n"}},
	}
}

const metricsWant = `# HELP perfagent_recommendation_expected_value Value a signal is expected to take once a current recommendation is applied, where a formula gives one (docs/recommendations.md); the signal's unit.
# TYPE perfagent_recommendation_expected_value untyped
perfagent_recommendation_expected_value{engine="vllm",id="raise_gpu_memory_utilization",instance="gpu-0:8000",model="m",quantile="",signal="llm_kv_cache_usage_ratio"} 0.8
# HELP perfagent_recommendation_confidence Confidence of a current recommendation, from 0 to 1 (docs/recommendations.md).
# TYPE perfagent_recommendation_confidence gauge
perfagent_recommendation_confidence{engine="tgi",id="scale_out",instance="",model="m"} 0.8
perfagent_recommendation_confidence{engine="vllm",id="investigate_errors",instance="gpu-1:8000",model="m"} 0.5
perfagent_recommendation_confidence{engine="vllm",id="raise_gpu_memory_utilization",instance="gpu-0:8000",model="m"} 0.9
# HELP perfagent_recommendation_info Current recommendation of perfagent for a model server (value 1): the flag, its current and proposed values; for replica changes flag is "replicas".
# TYPE perfagent_recommendation_info gauge
perfagent_recommendation_info{current="",engine="vllm",flag="",id="investigate_errors",instance="gpu-1:8000",model="m",proposed=""} 1
perfagent_recommendation_info{current="0.9",engine="vllm",flag="--gpu-memory-utilization",id="raise_gpu_memory_utilization",instance="gpu-0:8000",model="m",proposed="0.95"} 1
perfagent_recommendation_info{current="1",engine="tgi",flag="replicas",id="scale_out",instance="",model="m",proposed="2"} 1
`

func TestRecommendationsCollector(t *testing.T) {
	c := NewRecommendationsCollector(metricsFixture)
	if err := testutil.CollectAndCompare(c, strings.NewReader(metricsWant)); err != nil {
		t.Fatal(err)
	}
	bad := NewRecommendationsCollector(func() []Recommendation {
		return []Recommendation{{ID: "x", Instance: "\xff", Action: Action{Kind: KindManual}}}
	})
	if _, err := testutil.CollectAndLint(bad); err == nil {
		t.Error("invalid UTF-8 label values must surface as a collection error")
	}
}

// TestRecommendationsCollectorPromtool runs promtool check metrics on the
// exposition when promtool is installed.
func TestRecommendationsCollectorPromtool(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewRecommendationsCollector(metricsFixture))
	perfagenttest.PromtoolCheckMetrics(t, perfagenttest.Exposition(t, reg))
}
