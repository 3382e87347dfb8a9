package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// RulesConfig is the bottleneck-rules section.
type RulesConfig struct {
	// RuleFiles are extra bottleneck rule files (paths or globs relative to
	// the configuration file), evaluated with the built-in pack.
	RuleFiles []string `yaml:"rule_files,omitempty" json:"rule_files,omitempty"`
	// Disabled switches rules off by alert name.
	Disabled []string `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// SLO holds per-model targets; the entry without a model is the
	// default for every other model.
	SLO []SLOTarget `yaml:"slo,omitempty" json:"slo,omitempty"`
}

// Validate checks the rules section.
func (c *RulesConfig) Validate() []error {
	var errs []error
	for i, f := range c.RuleFiles {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("rules.rule_files[%d]", i), Err: errors.New("is empty")})
		}
	}
	for i, n := range c.Disabled {
		if strings.TrimSpace(n) == "" {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("rules.disabled[%d]", i), Err: errors.New("is empty")})
		}
	}
	for i, t := range c.SLO {
		if err := ValidateSLOTargets([]SLOTarget{t}); err != nil {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("rules.slo[%d]", i), Err: err})
		}
	}
	if err := ValidateSLOTargets(c.SLO); err != nil && len(errs) == 0 {
		errs = append(errs, &FieldError{Path: "rules.slo", Err: err})
	}
	return errs
}

// SLOTarget is the service-level objective of one model. A zero field
// means "no target of its own": the default target applies.
type SLOTarget struct {
	// Model is the served model name; empty makes this the default target.
	Model string `yaml:"model" json:"model"`
	// TTFTP95 is the target 95th percentile of time to first token.
	TTFTP95 Duration `yaml:"ttft_p95,omitempty" json:"ttft_p95,omitempty"`
	// ITLP95 is the target 95th percentile of inter-token latency.
	ITLP95 Duration `yaml:"itl_p95,omitempty" json:"itl_p95,omitempty"`
	// ErrorRatio is the highest acceptable share of failed requests (0..1).
	ErrorRatio float64 `yaml:"error_ratio,omitempty" json:"error_ratio,omitempty"`
}

// ValidateSLOTargets reports targets that are out of range or repeat a
// model; loading the configuration and writing the target series call it.
func ValidateSLOTargets(targets []SLOTarget) error {
	seen := map[string]bool{}
	var errs []error
	for i, t := range targets {
		name := fmt.Sprintf("slo target %d (model %q)", i, t.Model)
		if seen[t.Model] {
			errs = append(errs, fmt.Errorf("%s: model repeated", name))
		}
		seen[t.Model] = true
		if t.TTFTP95 < 0 || t.ITLP95 < 0 {
			errs = append(errs, fmt.Errorf("%s: latency targets must not be negative", name))
		}
		if t.ErrorRatio < 0 || t.ErrorRatio > 1 || math.IsNaN(t.ErrorRatio) {
			errs = append(errs, fmt.Errorf("%s: error_ratio must be between 0 and 1", name))
		}
	}
	return errors.Join(errs...)
}
