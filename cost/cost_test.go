package cost

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	perfagenttest "github.com/optiinfra/perfagent/internal/testutil"
	"github.com/optiinfra/perfagent/signals"
)

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Cost.GPUHourPrices = map[string]float64{"h100": 4, "l4": 0.8}
	cfg.Cost.DefaultAccelerator = "h100"
	cfg.Instances = []config.InstanceConfig{
		{Instance: "a:8000", Accelerator: "l4"},
		{Instance: "b:8000", GPUs: 8},
	}
	cfg.Recommender.Models = []config.ModelConfig{{Name: "big", TensorParallelSize: 4}}
	return &cfg
}

func inst(name, model string, settings collector.Settings, sigs map[string]float64) *collector.Instance {
	in := &collector.Instance{Instance: name, Engine: signals.EngineVLLM, Model: model, Settings: settings}
	for k, v := range sigs {
		in.Signals = append(in.Signals, signals.Value{Name: k, Value: v})
	}
	return in
}

func TestInstances(t *testing.T) {
	snap := &collector.Snapshot{Instances: []*collector.Instance{
		inst("a:8000", "m", nil, map[string]float64{PromptTokensPerSecond: 400, GenerationTokensPerSecond: 100}),
		inst("b:8000", "m", nil, nil),
		inst("c:8000", "m", collector.Settings{"tp_size": {Value: "2"}}, map[string]float64{GenerationTokensPerSecond: 1000, "llm_kv_cache_usage_ratio": 0.1, "llm_requests_running": 3, "llm_max_running_requests": 10}),
		inst("d:8000", "big", nil, nil),
		inst("e:8000", "m", nil, nil),
	}}
	got := NewPricing(testConfig()).Instances(snap, func(i string) bool { return i == "c:8000" })
	type want struct {
		accel       string
		gpus        int
		src         string
		perHour     float64
		prompt, gen float64 // NaN: absent
		idle        float64
	}
	nan := math.NaN()
	wants := map[string]want{
		// 0.8/h over weighted units 0.25×400 + 100 = 200/s: a generated
		// token costs 0.8/(200×3600) per token.
		"a:8000": {"l4", 1, GPUsAssumed, 0.8, 0.8 / 720000 * 1e6 * 0.25, 0.8 / 720000 * 1e6, nan},
		"b:8000": {"h100", 8, GPUsFromConfig, 32, nan, nan, nan},
		// Busy share max(0.1, 3/10) = 0.3, so 70 % of 8/h is idle.
		"c:8000": {"h100", 2, GPUsFromSetting, 8, nan, 8 / 3.6e6 * 1e6, 5.6},
		"d:8000": {"h100", 4, GPUsFromModel, 16, nan, nan, nan},
		"e:8000": {"h100", 1, GPUsAssumed, 4, nan, nan, nan},
	}
	if len(got) != len(wants) {
		t.Fatalf("got %d instances, want %d: %+v", len(got), len(wants), got)
	}
	opt := func(p *float64) float64 {
		if p == nil {
			return nan
		}
		return *p
	}
	same := func(a, b float64) bool { return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-9 }
	for _, c := range got {
		w := wants[c.Instance]
		if c.Currency != config.DefaultCurrency {
			t.Errorf("%s: currency %q, want the default %s", c.Instance, c.Currency, config.DefaultCurrency)
		}
		if c.PromptTokensPerSecond+c.GenerationTokensPerSecond != c.TokensPerSecond {
			t.Errorf("%s: %g prompt and %g generated tokens/s do not add up to %g", c.Instance, c.PromptTokensPerSecond, c.GenerationTokensPerSecond, c.TokensPerSecond)
		}
		if c.Accelerator != w.accel || c.GPUs != w.gpus || c.GPUsSource != w.src || !same(c.PerHour, w.perHour) ||
			!same(opt(c.PromptPerMillionTokens), w.prompt) || !same(opt(c.GenerationPerMillionTokens), w.gen) || !same(opt(c.IdlePerHour), w.idle) {
			t.Errorf("%s: got %+v (prompt %v, generation %v, idle %v), want %+v", c.Instance, c, opt(c.PromptPerMillionTokens), opt(c.GenerationPerMillionTokens), opt(c.IdlePerHour), w)
		}
	}
}

func TestUnpriced(t *testing.T) {
	cfg := config.Default()
	if p := NewPricing(&cfg); p != nil {
		t.Fatalf("no prices gave a pricing: %+v", p)
	}
	cfg.Cost.GPUHourPrices = map[string]float64{"h100": 4}
	snap := &collector.Snapshot{Instances: []*collector.Instance{inst("a:8000", "m", nil, nil)}}
	if got := NewPricing(&cfg).Instances(snap, nil); len(got) != 0 {
		t.Errorf("an instance without accelerator nor default was priced: %+v", got)
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		perHour, prompt, gen, w float64
		wantPrompt, wantGen     float64 // NaN: absent
	}{
		{"weighted", 3.6, 1000, 1000, 0.25, 0.2, 0.8},
		{"equal weight is the blended cost", 3.6, 500, 500, 1, 1, 1},
		{"no prompt tokens", 3.6, 0, 1000, 0.25, math.NaN(), 1},
		{"no generated tokens", 3.6, 1000, 0, 0.25, 1, math.NaN()},
		{"prompt tokens free", 3.6, 1000, 1000, 0, 0, 1},
		{"no tokens", 3.6, 0, 0, 0.25, math.NaN(), math.NaN()},
		{"nothing but free tokens", 3.6, 1000, 0, 0, math.NaN(), math.NaN()},
		{"a rate that is not a number", 3.6, math.NaN(), 1000, 0.25, math.NaN(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, g := Split(tc.perHour, tc.prompt, tc.gen, tc.w)
			check := func(what string, got *float64, want float64) {
				switch {
				case got == nil && !math.IsNaN(want):
					t.Errorf("%s: absent, want %g", what, want)
				case got != nil && (math.IsNaN(want) || math.Abs(*got-want) > 1e-9):
					t.Errorf("%s: got %g, want %g", what, *got, want)
				}
			}
			check("prompt", p, tc.wantPrompt)
			check("generation", g, tc.wantGen)
			// The directions' shares add up to the hour's cost.
			var sum float64
			if p != nil {
				sum += *p * tc.prompt * 3600 / 1e6
			}
			if g != nil {
				sum += *g * tc.gen * 3600 / 1e6
			}
			if (p != nil || g != nil) && math.Abs(sum-tc.perHour) > 1e-9 {
				t.Errorf("shares add up to %g, want %g", sum, tc.perHour)
			}
		})
	}
}

func TestCollector(t *testing.T) {
	snap := &collector.Snapshot{Instances: []*collector.Instance{
		inst("a:8000", "m", nil, map[string]float64{PromptTokensPerSecond: 1000, GenerationTokensPerSecond: 250, "llm_kv_cache_usage_ratio": 0.25}),
	}}
	cfg := testConfig()
	cfg.Cost.Currency = "EUR"
	pr := NewPricing(cfg)
	c := NewCollector(func() []Instance { return pr.Instances(snap, func(string) bool { return true }) })
	const want = `
# HELP perfagent_cost_per_hour What the instance's GPUs cost per hour, from cost.gpu_hour_prices, in the currency of its label (docs/cost.md).
# TYPE perfagent_cost_per_hour gauge
perfagent_cost_per_hour{currency="EUR",engine="vllm",instance="a:8000",model="m"} 0.8
# HELP perfagent_cost_per_million_tokens What a million prompt or generated tokens (direction) cost at the instance's token rates, the hour's cost split between the directions by weighted tokens (docs/cost.md).
# TYPE perfagent_cost_per_million_tokens gauge
perfagent_cost_per_million_tokens{currency="EUR",direction="generation",engine="vllm",instance="a:8000",model="m"} 0.4444444444444445
perfagent_cost_per_million_tokens{currency="EUR",direction="prompt",engine="vllm",instance="a:8000",model="m"} 0.11111111111111112
# HELP perfagent_idle_cost_per_hour The unused share of the hour's cost of an instance whose LLMUnderutilized (B6) bottleneck fires (docs/cost.md).
# TYPE perfagent_idle_cost_per_hour gauge
perfagent_idle_cost_per_hour{currency="EUR",engine="vllm",instance="a:8000",model="m"} 0.6000000000000001
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(NewCollector(func() []Instance { return nil })); n != 0 {
		t.Errorf("no prices exported %d series", n)
	}
}

func TestCollectorPromtool(t *testing.T) {
	snap := &collector.Snapshot{Instances: []*collector.Instance{
		inst("a:8000", "m", nil, map[string]float64{PromptTokensPerSecond: 1000, GenerationTokensPerSecond: 250, "llm_kv_cache_usage_ratio": 0.25}),
	}}
	pr := NewPricing(testConfig())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(func() []Instance { return pr.Instances(snap, func(string) bool { return true }) }))
	perfagenttest.PromtoolCheckMetrics(t, perfagenttest.Exposition(t, reg))
}
