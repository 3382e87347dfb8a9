package config

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// ParseRuleGroups parses a Prometheus rule file (bottleneck rules, engine
// profiles) with rulefmt. The YAML decoder under rulefmt panics on some
// malformed input instead of failing (a NUL byte inside a mapping: the
// rule-file fuzz target found it); such a file is reported as not YAML,
// so a bad file can never stop the agent.
func ParseRuleGroups(content []byte, p parser.Parser, logger *slog.Logger) (groups *rulefmt.RuleGroups, errs []error) {
	defer func() {
		if r := recover(); r != nil {
			groups, errs = nil, []error{fmt.Errorf("not a valid YAML document: %v", r)}
		}
	}()
	return rulefmt.Parse(content, false, model.UTF8Validation, p, logger)
}
