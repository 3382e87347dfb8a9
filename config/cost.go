package config

import (
	"fmt"
	"math"
	"sort"
)

// CostConfig prices the GPUs instances run on (docs/cost.md). Without
// prices no cost is computed.
type CostConfig struct {
	// GPUHourPrices is the price of one GPU for one hour, by accelerator
	// type (any name: h100, a100-80gb, l4), in one currency of the
	// operator's choice.
	GPUHourPrices map[string]float64 `yaml:"gpu_hour_prices,omitempty" json:"gpu_hour_prices,omitempty"`
	// DefaultAccelerator is the type of instances whose entry names none.
	// Empty leaves them unpriced.
	DefaultAccelerator string `yaml:"default_accelerator,omitempty" json:"default_accelerator,omitempty"`
	// PromptTokenWeight is what one prompt token costs relative to one
	// generated token when an hour's cost is split between the two
	// directions.
	PromptTokenWeight float64 `yaml:"prompt_token_weight" json:"prompt_token_weight"`
	// Currency is the ISO 4217 code of the prices. Every cost figure
	// carries it, so agents that price in different currencies are
	// not summed together unawares.
	Currency string `yaml:"currency" json:"currency"`
}

// DefaultPromptTokenWeight makes a prompt token cost a quarter of a
// generated token: prefill handles many tokens per forward pass, decode one
// per sequence (docs/cost.md).
const DefaultPromptTokenWeight = 0.25

// DefaultCurrency is the currency of prices whose section names none.
const DefaultCurrency = "USD"

// DefaultCostConfig returns what an absent cost section means: no prices.
func DefaultCostConfig() CostConfig {
	return CostConfig{PromptTokenWeight: DefaultPromptTokenWeight, Currency: DefaultCurrency}
}

// UnmarshalYAML applies the defaults before decoding.
func (c *CostConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultCostConfig()
	type plain CostConfig
	return unmarshal((*plain)(c))
}

// Priced reports whether any price is configured.
func (c *CostConfig) Priced() bool { return len(c.GPUHourPrices) > 0 }

// validateCost checks the cost section and the accelerators and GPU
// counts that instances and targets name.
func (c *Config) validateCost() []error {
	var errs []error
	names := make([]string, 0, len(c.Cost.GPUHourPrices))
	for name := range c.Cost.GPUHourPrices {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := c.Cost.GPUHourPrices[name]
		switch {
		case name == "":
			errs = append(errs, fieldErr("cost.gpu_hour_prices", "an accelerator name is empty"))
		case math.IsNaN(p) || math.IsInf(p, 0) || p <= 0:
			errs = append(errs, fieldErr("cost.gpu_hour_prices."+name, "must be a price greater than zero, got %g", p))
		}
	}
	known := func(path, accel string) {
		if accel == "" {
			return
		}
		if _, ok := c.Cost.GPUHourPrices[accel]; !ok {
			errs = append(errs, fieldErr(path, "accelerator %q has no price in cost.gpu_hour_prices (priced: %v)", accel, names))
		}
	}
	known("cost.default_accelerator", c.Cost.DefaultAccelerator)
	if w := c.Cost.PromptTokenWeight; math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
		errs = append(errs, fieldErr("cost.prompt_token_weight", "must be zero or greater, got %g", w))
	}
	if !isCurrencyCode(c.Cost.Currency) {
		errs = append(errs, fieldErr("cost.currency", "must be an ISO 4217 code of three upper-case letters, such as USD or EUR, got %q", c.Cost.Currency))
	}
	gpus := func(path string, n int) {
		if n < 0 {
			errs = append(errs, fieldErr(path, "must not be negative, got %d", n))
		}
	}
	for i, t := range c.Source.Targets {
		path := fmt.Sprintf("source.targets[%d]", i)
		known(path+".accelerator", t.Accelerator)
		gpus(path+".gpus", t.GPUs)
	}
	for i, in := range c.Instances {
		path := fmt.Sprintf("instances[%d]", i)
		known(path+".accelerator", in.Accelerator)
		gpus(path+".gpus", in.GPUs)
	}
	return errs
}

// isCurrencyCode reports whether s has the form of an ISO 4217 code. The
// list of codes itself changes over time and is not checked.
func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
