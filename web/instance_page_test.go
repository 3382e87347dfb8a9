package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/signals"
	apiv1 "github.com/optiinfra/perfagent/web/api/v1"
)

type pageCollector struct{ snap *collector.Snapshot }

func (c pageCollector) Latest() *collector.Snapshot { return c.snap }
func (c pageCollector) Collect(context.Context, time.Time, collector.CollectOptions) (*collector.Snapshot, error) {
	return c.snap, nil
}
func (pageCollector) Engines() []string                                 { return nil }
func (pageCollector) SignalExpressions() map[string]map[string][]string { return nil }

type pageRules struct{ bs []rules.Bottleneck }

func (r pageRules) Bottlenecks() []rules.Bottleneck { return r.bs }
func (pageRules) RuleGroups() []*promrules.Group    { return nil }
func (pageRules) Detect(context.Context, time.Time, rules.DetectOptions) ([]rules.Bottleneck, error) {
	return nil, nil
}

type pageRecommendations struct{ recs []recommender.Recommendation }

func (p pageRecommendations) Latest() recommender.Report {
	return recommender.Report{Recommendations: p.recs}
}
func (p pageRecommendations) Recommend(context.Context, time.Time, apiv1.RecommendRequest) (recommender.Report, error) {
	return p.Latest(), nil
}

func TestInstancePage(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	snap := &collector.Snapshot{Time: now, Instances: []*collector.Instance{{
		Instance: "10.0.0.7:8000", Engine: "vllm", Model: "llama",
		Settings: collector.Settings{"gpu_memory_utilization": {Value: "0.7", Source: "cache_config_info"}},
		Signals:  []signals.Value{{Name: "llm_kv_cache_usage_ratio", Value: 0.97}},
	}}}
	current, estimate := 1.5, 0.9
	api := apiv1.New(apiv1.Options{
		Collector: pageCollector{snap},
		Rules: pageRules{[]rules.Bottleneck{
			{Rule: "LLMKVCachePressure", ID: "B1", Severity: "warning", State: rules.StateFiring, Instance: "10.0.0.7:8000", ActiveAt: now, Summary: "KV cache full"},
			{Rule: "LLMQueueBuildup", Instance: "10.0.0.8:8000", Summary: "another instance"},
		}},
		Recommendations: pageRecommendations{[]recommender.Recommendation{{
			ID: "raise_gpu_memory_utilization", Rank: 1, Instance: "10.0.0.7:8000", Confidence: 0.8,
			Action:  recommender.Action{Flag: "--gpu-memory-utilization", Current: "0.7", Proposed: "0.9"},
			Effects: []recommender.Effect{{Signal: "llm_time_to_first_token_seconds", Quantile: "0.95", Direction: "decrease", Current: &current, Estimate: &estimate}},
		}}},
	})
	h := New(Options{Logger: slog.New(slog.DiscardHandler), Gatherer: prometheus.NewRegistry(), API: api, ExternalURL: func() string { return "http://agent:8002" }})

	code, body := serve(h, http.MethodGet, InstancePath("10.0.0.7:8000"))
	if code != http.StatusOK {
		t.Fatalf("instance page = %d %s", code, body)
	}
	for _, want := range []string{
		"vllm serving <strong>llama</strong>", "LLMKVCachePressure", "KV cache full",
		"<code>--gpu-memory-utilization</code> 0.7 → 0.9", "llm_time_to_first_token_seconds p0.95 decrease (1.5 → 0.9)",
		"llm_kv_cache_usage_ratio", "0.97", "gpu_memory_utilization", `href="http://agent:8002/api/v1/instances/10.0.0.7:8000"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("instance page lacks %q", want)
		}
	}
	if strings.Contains(body, "another instance") {
		t.Error("instance page shows another instance's bottleneck")
	}
	if code, body := serve(h, http.MethodGet, "/instances/unknown:1"); code != http.StatusNotFound || !strings.Contains(body, "/api/v1/instances") {
		t.Errorf("unknown instance = %d %q", code, body)
	}
}
