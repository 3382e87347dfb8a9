package simulator

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

//go:embed scenarios/*.yaml
var scenarioFS embed.FS

// Scenario is a fleet file from the embedded library with its ground truth in Fleet.Truth.
type Scenario struct {
	// Name is the file name without .yaml.
	Name  string
	Fleet *FleetConfig
	// Source is the YAML text, for writing the scenario out.
	Source []byte
}

// Scenarios parses every embedded scenario, in name order.
func Scenarios() ([]Scenario, error) {
	entries, err := fs.ReadDir(scenarioFS, "scenarios")
	if err != nil {
		return nil, fmt.Errorf("reading scenarios: %w", err)
	}
	var out []Scenario
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		sc, err := LoadScenario(strings.TrimSuffix(e.Name(), ".yaml"))
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// LoadScenario parses one embedded scenario by name (file name without .yaml).
func LoadScenario(name string) (Scenario, error) {
	p := path.Join("scenarios", name+".yaml")
	data, err := scenarioFS.ReadFile(p)
	if err != nil {
		return Scenario{}, fmt.Errorf("loading scenario %s: %w", name, err)
	}
	cfg, err := ParseFleet(p, data)
	if err != nil {
		return Scenario{}, fmt.Errorf("loading scenario %s: %w", name, err)
	}
	return Scenario{Name: name, Fleet: cfg, Source: data}, nil
}
