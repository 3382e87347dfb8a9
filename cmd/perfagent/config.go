package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/workflow"
)

// Config is the whole configuration file. Each section belongs to the
// package that uses it.
type Config struct {
	collector.Config `yaml:",inline"`
	Rules            RulesConfig        `yaml:"rules" json:"rules"`
	Recommender      recommender.Config `yaml:"recommender" json:"recommender"`
	Workflow         WorkflowConfig     `yaml:"workflow" json:"workflow"`
}

// RulesConfig is the bottleneck-rules section.
type RulesConfig struct {
	// RuleFiles are extra bottleneck rule files (paths or globs relative to
	// the configuration file), evaluated with the built-in pack.
	RuleFiles []string `yaml:"rule_files,omitempty" json:"rule_files,omitempty"`
	// Disabled switches rules off by alert name.
	Disabled []string `yaml:"disabled,omitempty" json:"disabled,omitempty"`
	// SLO holds per-model targets; the entry without a model is the
	// default for every other model.
	SLO []rules.SLOTarget `yaml:"slo,omitempty" json:"slo,omitempty"`
}

// Validate checks the rules section.
func (c *RulesConfig) Validate() []error {
	var errs []error
	for i, f := range c.RuleFiles {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, &collector.FieldError{Path: fmt.Sprintf("rules.rule_files[%d]", i), Err: errors.New("is empty")})
		}
	}
	for i, n := range c.Disabled {
		if strings.TrimSpace(n) == "" {
			errs = append(errs, &collector.FieldError{Path: fmt.Sprintf("rules.disabled[%d]", i), Err: errors.New("is empty")})
		}
	}
	for i, t := range c.SLO {
		if err := rules.ValidateSLOTargets([]rules.SLOTarget{t}); err != nil {
			errs = append(errs, &collector.FieldError{Path: fmt.Sprintf("rules.slo[%d]", i), Err: err})
		}
	}
	if err := rules.ValidateSLOTargets(c.SLO); err != nil && len(errs) == 0 {
		errs = append(errs, &collector.FieldError{Path: "rules.slo", Err: err})
	}
	return errs
}

// validateWorkflowWindow refuses an analysis window that cannot hold the
// samples validation needs: signals are stored once per evaluation
// interval, so a shorter window would pause every stage for lack of data.
func (c *Config) validateWorkflowWindow() []error {
	if !c.Workflow.Enabled() {
		return nil
	}
	window, path := time.Duration(c.Workflow.Window), "workflow.window"
	if window <= 0 {
		window, path = workflow.DefaultSettings().Window, "global.evaluation_interval"
	}
	interval := time.Duration(c.Global.EvaluationInterval)
	if interval <= 0 || window >= workflow.DefaultMinSamples*interval {
		return nil
	}
	return []error{&collector.FieldError{Path: path, Err: fmt.Errorf(
		"a workflow window of %s holds %d samples at an evaluation interval of %s, and validation needs %d per side: make workflow.window at least %s",
		window, int(window/interval), interval, workflow.DefaultMinSamples, workflow.DefaultMinSamples*interval)}}
}

// ruleFiles lists the bottleneck rule files in force: the built-in pack
// and the configured files, globs expanded relative to the configuration
// file's directory.
func (c *Config) ruleFiles(configFile string) ([]string, error) {
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

// ConfigErrors lists every problem found in a configuration file, each as
// "file:line: field path: what is wrong".
type ConfigErrors []error

func (e ConfigErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// loadConfig reads, decodes and validates a configuration file. Unknown
// fields and bad values are reported with the file, line and field.
func loadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return parseConfig(path, b)
}

func parseConfig(path string, b []byte) (*Config, error) {
	cfg := &Config{Config: collector.DefaultConfig(), Recommender: recommender.DefaultConfig()}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, ConfigErrors{fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeErrors(path, &root, err)
	}
	var errs ConfigErrors
	all := append(cfg.Validate(), cfg.Rules.Validate()...)
	all = append(all, cfg.Recommender.Validate()...)
	all = append(all, cfg.Workflow.Validate()...)
	all = append(all, cfg.validateWorkflowWindow()...)
	for _, err := range all {
		var fe *collector.FieldError
		if errors.As(err, &fe) {
			line := pathLine(&root, fe.Path)
			errs = append(errs, fmt.Errorf("%s:%d: field %s: %w", path, line, fe.Path, fe.Err))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// Files named in the configuration are relative to it, as in Prometheus.
	dir := filepath.Dir(path)
	if p := cfg.Source.Prometheus; p != nil {
		p.HTTPClientConfig.SetDirectory(dir)
	}
	if w := cfg.Workflow.Webhook; w != nil && w.SecretFile != "" && !filepath.IsAbs(w.SecretFile) {
		w.SecretFile = filepath.Join(dir, w.SecretFile)
	}
	return cfg, nil
}

var (
	yamlLineMsg      = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// decodeErrors turns yaml.v3's "line N: …" messages into
// "file:N: field path: …".
func decodeErrors(path string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return ConfigErrors{fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	var errs ConfigErrors
	for _, msg := range te.Errors {
		m := yamlLineMsg.FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, fmt.Errorf("%s: %s", path, msg))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		field := lineField(root, line)
		text := m[2]
		if u := yamlUnknownField.FindStringSubmatch(text); u != nil {
			text = fmt.Sprintf("unknown field %q (check its spelling and indentation against docs/configuration.md)", u[1])
		}
		if field == "" {
			errs = append(errs, fmt.Errorf("%s:%d: %s", path, line, text))
			continue
		}
		errs = append(errs, fmt.Errorf("%s:%d: field %s: %s", path, line, field, text))
	}
	return errs
}

// lineField names the field whose key or value starts on line.
func lineField(root *yaml.Node, line int) string {
	var found string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if found != "" {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := joinPath(path, k.Value)
				if k.Line == line || (v.Line == line && v.Kind == yaml.ScalarNode) {
					found = p
					return
				}
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Line == line && c.Kind == yaml.ScalarNode {
					found = p
					return
				}
				walk(c, p)
			}
		}
	}
	walk(root, "")
	return found
}

// pathLine finds the line of a field path such as source.targets[1].url,
// or of its nearest ancestor present in the file.
func pathLine(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 1
	if n.Line > 0 {
		line = n.Line
	}
	for _, part := range splitPath(path) {
		switch {
		case part.index >= 0 && n.Kind == yaml.SequenceNode && part.index < len(n.Content):
			n = n.Content[part.index]
			line = n.Line
		case part.index < 0 && n.Kind == yaml.MappingNode:
			next := (*yaml.Node)(nil)
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part.key {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return line
			}
			n = next
		default:
			return line
		}
	}
	return line
}

type pathPart struct {
	key   string
	index int
}

func splitPath(path string) []pathPart {
	var out []pathPart
	for _, seg := range strings.Split(path, ".") {
		key := seg
		var idx []int
		for {
			open := strings.IndexByte(key, '[')
			if open < 0 {
				break
			}
			end := strings.IndexByte(key[open:], ']')
			if end < 0 {
				break
			}
			n, err := strconv.Atoi(key[open+1 : open+end])
			if err == nil {
				idx = append(idx, n)
			}
			key = key[:open] + key[open+end+1:]
		}
		if key != "" {
			out = append(out, pathPart{key: key, index: -1})
		}
		for _, i := range idx {
			out = append(out, pathPart{index: i})
		}
	}
	return out
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}
