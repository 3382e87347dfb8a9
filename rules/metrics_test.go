package rules

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"

	perfagenttest "github.com/optiinfra/perfagent/internal/testutil"
)

var sampleBottlenecks = []Bottleneck{
	{Rule: "LLMDecodeBoundITL", Category: CategoryLatency, Severity: SeverityWarning, State: StateFiring, Instance: "a:8000", Engine: "vllm", Model: "m", Labels: labels.FromStrings("quantile", "0.95")},
	// The same rule and server, another quantile label: exported once.
	{Rule: "LLMDecodeBoundITL", Category: CategoryLatency, Severity: SeverityWarning, State: StateFiring, Instance: "a:8000", Engine: "vllm", Model: "m", Labels: labels.FromStrings("quantile", "0.99")},
	{Rule: "LLMKVCachePressure", Category: CategoryMemory, Severity: SeverityWarning, State: StatePending, Instance: "b:8000", Engine: "vllm", Model: "m"},
}

func TestBottlenecksCollector(t *testing.T) {
	c := NewBottlenecksCollector(func() []Bottleneck { return sampleBottlenecks })
	want := `
# HELP perfagent_bottleneck Active bottleneck (value 1) by rule (bottleneck), category, severity, state (pending or firing) and model server.
# TYPE perfagent_bottleneck gauge
perfagent_bottleneck{bottleneck="LLMDecodeBoundITL",category="latency",engine="vllm",instance="a:8000",model="m",severity="warning",state="firing"} 1
perfagent_bottleneck{bottleneck="LLMKVCachePressure",category="memory",engine="vllm",instance="b:8000",model="m",severity="warning",state="pending"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	empty := NewBottlenecksCollector(func() []Bottleneck { return nil })
	if n := testutil.CollectAndCount(empty); n != 0 {
		t.Fatalf("no bottlenecks exported %d series", n)
	}
}

// TestMetricsPassPromtool lints everything the package exports with
// `promtool check metrics`.
func TestMetricsPassPromtool(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.EvaluationFailures.Inc()
	m.EvaluationDuration.Observe(0.01)
	m.BottlenecksDetected.WithLabelValues("LLMKVCachePressure", "memory", "warning", "b:8000", "vllm", "m").Inc()
	reg.MustRegister(NewBottlenecksCollector(func() []Bottleneck { return sampleBottlenecks }))
	exposition := perfagenttest.Exposition(t, reg)
	for _, name := range []string{"perfagent_bottleneck{", "perfagent_bottlenecks_detected_total{", "perfagent_rule_evaluation_failures_total ", "perfagent_rule_evaluation_duration_seconds_bucket{"} {
		if !strings.Contains(exposition, name) {
			t.Errorf("exposition lacks %s", name)
		}
	}
	perfagenttest.PromtoolCheckMetrics(t, exposition)
}
