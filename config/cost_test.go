package config

import (
	"strings"
	"testing"
)

func TestCostConfig(t *testing.T) {
	const head = "source: {targets: [{url: http://a:1, accelerator: h100, gpus: 2}]}\n"
	cfg, err := Load([]byte(head+"cost:\n  gpu_hour_prices: {h100: 3.5}\ninstances:\n  - {instance: 'b:1', accelerator: h100, gpus: 4}\n"), "p.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cost.PromptTokenWeight != DefaultPromptTokenWeight || cfg.Cost.Currency != "USD" || !cfg.Cost.Priced() {
		t.Errorf("cost = %+v, want the default prompt weight, USD and a price", cfg.Cost)
	}
	if cfg, err := Load([]byte(head+"cost:\n  gpu_hour_prices: {h100: 3.5}\n  currency: EUR\n"), "p.yml"); err != nil || cfg.Cost.Currency != "EUR" {
		t.Errorf("currency EUR: %v, %+v", err, cfg)
	}
	facts := cfg.InstanceFacts()
	if f := facts["a:1"]; f.Accelerator != "h100" || f.GPUs != 2 {
		t.Errorf("target facts = %+v", f)
	}
	if f := facts["b:1"]; f.Accelerator != "h100" || f.GPUs != 4 {
		t.Errorf("instance facts = %+v", f)
	}
	if _, err := Load([]byte("source: {targets: [{url: http://a:1}]}\n"), "p.yml"); err != nil {
		t.Errorf("a file without prices: %v", err)
	}

	for _, tc := range []struct {
		name, yaml string
		want       string
	}{
		{"zero price", head + "cost:\n  gpu_hour_prices: {h100: 0}\n", "p.yml:3: field cost.gpu_hour_prices.h100: must be a price greater than zero, got 0"},
		{"negative price", head + "cost:\n  gpu_hour_prices: {h100: -1}\n", "field cost.gpu_hour_prices.h100: must be a price greater than zero, got -1"},
		{"unpriced target", "source: {targets: [{url: http://a:1, accelerator: a100}]}\ncost:\n  gpu_hour_prices: {h100: 2}\n", `field source.targets[0].accelerator: accelerator "a100" has no price in cost.gpu_hour_prices (priced: [h100])`},
		{"unpriced instance", head + "cost:\n  gpu_hour_prices: {h100: 2}\ninstances:\n  - {instance: 'b:1', accelerator: l4}\n", `field instances[0].accelerator: accelerator "l4" has no price`},
		{"unpriced default", head + "cost:\n  gpu_hour_prices: {h100: 2}\n  default_accelerator: l4\n", `field cost.default_accelerator: accelerator "l4" has no price`},
		{"negative gpus", head + "cost:\n  gpu_hour_prices: {h100: 2}\ninstances:\n  - {instance: 'b:1', gpus: -1}\n", "field instances[0].gpus: must not be negative, got -1"},
		{"negative weight", head + "cost:\n  gpu_hour_prices: {h100: 2}\n  prompt_token_weight: -0.5\n", "field cost.prompt_token_weight: must be zero or greater, got -0.5"},
		{"lower-case currency", head + "cost:\n  gpu_hour_prices: {h100: 2}\n  currency: eur\n", `p.yml:4: field cost.currency: must be an ISO 4217 code of three upper-case letters, such as USD or EUR, got "eur"`},
		{"currency symbol", head + "cost:\n  gpu_hour_prices: {h100: 2}\n  currency: $\n", `field cost.currency: must be an ISO 4217 code of three upper-case letters, such as USD or EUR, got "$"`},
		{"empty currency", head + "cost:\n  gpu_hour_prices: {h100: 2}\n  currency: ''\n", `field cost.currency: must be an ISO 4217 code`},
		{"long currency", head + "cost:\n  currency: EURO\n", `field cost.currency: must be an ISO 4217 code`},
		{"bad preference", head + "cost:\n  gpu_hour_prices: {h100: 2}\nrecommender:\n  objectives: {prefer: money}\n", `field recommender.objectives.prefer: "money" is neither latency nor cost`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.yaml), "p.yml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
