package main

import (
	"fmt"
	"path/filepath"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/rules"
)

// ruleFiles lists the bottleneck rule files in force: the built-in pack
// and the configured files, globs expanded relative to the configuration
// file's directory.
func ruleFiles(c *config.Config, configFile string) ([]string, error) {
	files := rules.BuiltinFiles()
	for _, pattern := range c.Rules.RuleFiles {
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(configFile), pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("rules.rule_files: pattern %q: %w", pattern, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("rules.rule_files: pattern %q matches no file", pattern)
		}
		files = append(files, matches...)
	}
	return files, nil
}
