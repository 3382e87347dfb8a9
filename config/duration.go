package config

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written in Prometheus notation ("15s", "1m",
// "1h30m") in configuration files and API requests.
type Duration time.Duration

// UnmarshalYAML parses a Prometheus duration and reports the line of a bad
// value the way yaml.v3 reports its own type errors.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a duration such as 15s or 5m", node.Line)}}
	}
	v, err := model.ParseDuration(node.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (use a number and a unit: ms, s, m, h, d, w, y)", node.Line, node.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Prometheus notation.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes the duration in Prometheus notation.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON parses a duration in Prometheus notation.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("expected a duration string such as \"5m\", got %s", b)
	}
	v, err := model.ParseDuration(string(b[1 : len(b)-1]))
	if err != nil {
		return fmt.Errorf("%s is not a duration: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// String formats the duration as Prometheus does.
func (d Duration) String() string { return model.Duration(d).String() }
