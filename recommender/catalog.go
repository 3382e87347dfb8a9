package recommender

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/signals"
)

//go:embed catalog.yml
var embeddedCatalog []byte

// EmbeddedCatalogFile is the name errors in the embedded catalog carry.
const EmbeddedCatalogFile = "recommender/catalog.yml"

// Flag directions.
const (
	DirectionRaise = "raise"
	DirectionLower = "lower"
	DirectionSet   = "set"
)

// Catalog is the set of known recommendations and the triage order that
// ranks bottlenecks.
type Catalog struct {
	// Triage lists bottleneck ids, most urgent first (docs/bottlenecks.md, triage order).
	Triage      []string      `json:"triage"`
	Definitions []*Definition `json:"recommendations"`
	byID        map[string]*Definition
}

// Definition is one recommendation of the catalog.
type Definition struct {
	ID      string `json:"id"`
	Summary string `json:"summary"`
	// Kind is KindFlag, KindReplicas or KindManual.
	Kind string `json:"kind"`
	// Bottlenecks are the ids the recommendation addresses.
	Bottlenecks []string `json:"bottlenecks"`
	Risk        string   `json:"risk"`
	// Engines maps an engine name to what the recommendation means there.
	Engines map[string]EngineAction `json:"engines"`
	// Line is where the definition starts in its file.
	Line int `json:"-"`
}

// EngineAction is a recommendation on one engine.
type EngineAction struct {
	// NotApplicable, when set, says why the recommendation does not apply.
	NotApplicable string `json:"not_applicable,omitempty"`
	// Flag is the engine's command-line flag.
	Flag string `json:"flag,omitempty"`
	// Setting is the flag's key in collector.Settings.
	Setting string `json:"setting,omitempty"`
	// Direction is DirectionRaise, DirectionLower or DirectionSet.
	Direction string `json:"direction,omitempty"`
	// Value is the value a "set" direction proposes.
	Value string `json:"value,omitempty"`
	Unit  string `json:"unit,omitempty"`
	// Default is the engine's default for Setting, used (with lower
	// confidence) when the instance does not report the setting.
	Default string `json:"default,omitempty"`
	// Note describes a manual action.
	Note string `json:"note,omitempty"`
}

// Applicable reports whether the action applies.
func (a EngineAction) Applicable() bool { return a.NotApplicable == "" }

// Lookup returns the definition of an id.
func (c *Catalog) Lookup(id string) (*Definition, bool) {
	d, ok := c.byID[id]
	return d, ok
}

// TriageRank is the position of a bottleneck in the triage order; unknown
// ids rank last.
func (c *Catalog) TriageRank(bottleneck string) int {
	if i := slices.Index(c.Triage, bottleneck); i >= 0 {
		return i
	}
	return len(c.Triage)
}

// EmbeddedCatalog parses the catalog compiled into the binary.
func EmbeddedCatalog() (*Catalog, error) {
	c, errs := ParseCatalog(EmbeddedCatalogFile, embeddedCatalog)
	return c, errors.Join(errs...)
}

// knownEngines must each be described by every definition.
var knownEngines = []string{signals.EngineSGLang, signals.EngineTGI, signals.EngineVLLM}

var (
	kinds      = []string{KindFlag, KindReplicas, KindManual}
	directions = []string{DirectionRaise, DirectionLower, DirectionSet}
)

// ParseCatalog decodes and validates a catalog. Every error names
// file:line:column.
func ParseCatalog(file string, data []byte) (*Catalog, []error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, []error{fmt.Errorf("%s: parsing catalog: %w", file, err)}
	}
	p := &catalogParser{file: file}
	c := p.catalog(&root)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return c, nil
}

type catalogParser struct {
	file string
	errs []error
}

func (p *catalogParser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s:%d:%d: %s", p.file, n.Line, n.Column, fmt.Sprintf(format, args...)))
}

// fields checks that n is a mapping with only allowed keys and returns the
// value nodes by key.
func (p *catalogParser) fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !slices.Contains(allowed, k.Value):
			p.errorf(k, "unknown field %q in %s (allowed: %s)", k.Value, what, strings.Join(allowed, ", "))
		case out[k.Value] != nil:
			p.errorf(k, "field %q repeated in %s", k.Value, what)
		default:
			out[k.Value] = v
		}
	}
	return out
}

func (p *catalogParser) str(n *yaml.Node, what string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a string", what)
		return ""
	}
	return n.Value
}

func (p *catalogParser) strs(n *yaml.Node, what string) []string {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list", what)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, p.str(c, what))
	}
	return out
}

func (p *catalogParser) catalog(root *yaml.Node) *Catalog {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		p.errorf(root, "empty catalog")
		return nil
	}
	top := p.fields(root.Content[0], "catalog", "triage", "recommendations")
	if top == nil {
		return nil
	}
	c := &Catalog{byID: map[string]*Definition{}}
	if n := top["triage"]; n != nil {
		c.Triage = p.strs(n, "triage")
		seen := map[string]bool{}
		for i, b := range c.Triage {
			if seen[b] {
				p.errorf(n.Content[i], "bottleneck %q repeated in triage", b)
			}
			seen[b] = true
		}
	} else {
		p.errorf(root.Content[0], "missing field \"triage\"")
	}
	recs := top["recommendations"]
	if recs == nil || recs.Kind != yaml.SequenceNode {
		p.errorf(root.Content[0], "\"recommendations\" must be a list")
		return c
	}
	for _, n := range recs.Content {
		d := p.definition(n, c.Triage)
		if d == nil {
			continue
		}
		if _, dup := c.byID[d.ID]; dup {
			p.errorf(n, "recommendation %q defined twice", d.ID)
			continue
		}
		c.byID[d.ID] = d
		c.Definitions = append(c.Definitions, d)
	}
	return c
}

func (p *catalogParser) definition(n *yaml.Node, triage []string) *Definition {
	f := p.fields(n, "recommendation", "id", "summary", "kind", "bottlenecks", "risk", "engines")
	if f == nil {
		return nil
	}
	d := &Definition{
		ID:          p.str(f["id"], "id"),
		Summary:     p.str(f["summary"], "summary"),
		Kind:        p.str(f["kind"], "kind"),
		Bottlenecks: p.strs(f["bottlenecks"], "bottlenecks"),
		Risk:        p.str(f["risk"], "risk"),
		Engines:     map[string]EngineAction{},
		Line:        n.Line,
	}
	for _, req := range []string{"id", "summary", "kind", "bottlenecks", "risk", "engines"} {
		if f[req] == nil {
			p.errorf(n, "recommendation %q: missing field %q", d.ID, req)
		}
	}
	if f["kind"] != nil && !slices.Contains(kinds, d.Kind) {
		p.errorf(f["kind"], "recommendation %q: unknown kind %q (allowed: %s)", d.ID, d.Kind, strings.Join(kinds, ", "))
	}
	for i, b := range d.Bottlenecks {
		if !slices.Contains(triage, b) {
			p.errorf(f["bottlenecks"].Content[i], "recommendation %q: bottleneck %q is not in the triage order", d.ID, b)
		}
	}
	en := f["engines"]
	if en == nil {
		return d
	}
	if en.Kind != yaml.MappingNode {
		p.errorf(en, "recommendation %q: engines must be a mapping", d.ID)
		return d
	}
	for i := 0; i+1 < len(en.Content); i += 2 {
		k, v := en.Content[i], en.Content[i+1]
		if !slices.Contains(knownEngines, k.Value) {
			p.errorf(k, "recommendation %q: unknown engine %q (known: %s)", d.ID, k.Value, strings.Join(knownEngines, ", "))
			continue
		}
		if _, dup := d.Engines[k.Value]; dup {
			p.errorf(k, "recommendation %q: engine %q repeated", d.ID, k.Value)
			continue
		}
		d.Engines[k.Value] = p.engineAction(v, d)
	}
	for _, e := range knownEngines {
		if _, ok := d.Engines[e]; !ok {
			p.errorf(en, "recommendation %q: engine %q not described (give its action or not_applicable)", d.ID, e)
		}
	}
	return d
}

func (p *catalogParser) engineAction(n *yaml.Node, d *Definition) EngineAction {
	f := p.fields(n, "engine action", "not_applicable", "flag", "setting", "direction", "value", "unit", "default", "note")
	if f == nil {
		return EngineAction{}
	}
	a := EngineAction{
		NotApplicable: p.str(f["not_applicable"], "not_applicable"),
		Flag:          p.str(f["flag"], "flag"),
		Setting:       p.str(f["setting"], "setting"),
		Direction:     p.str(f["direction"], "direction"),
		Value:         p.str(f["value"], "value"),
		Unit:          p.str(f["unit"], "unit"),
		Default:       p.str(f["default"], "default"),
		Note:          p.str(f["note"], "note"),
	}
	if f["not_applicable"] != nil {
		if len(f) > 1 {
			p.errorf(n, "recommendation %q: not_applicable excludes every other field", d.ID)
		}
		if a.NotApplicable == "" {
			p.errorf(f["not_applicable"], "recommendation %q: not_applicable needs a reason", d.ID)
		}
		return a
	}
	if f["direction"] != nil && !slices.Contains(directions, a.Direction) {
		p.errorf(f["direction"], "recommendation %q: unknown direction %q (allowed: %s)", d.ID, a.Direction, strings.Join(directions, ", "))
	}
	switch d.Kind {
	case KindFlag:
		if !strings.HasPrefix(a.Flag, "--") {
			p.errorf(n, "recommendation %q: a flag action needs flag: --name", d.ID)
		}
		if a.Setting == "" || a.Direction == "" {
			p.errorf(n, "recommendation %q: a flag action needs setting and direction", d.ID)
		}
		if (a.Direction == DirectionSet) != (a.Value != "") {
			p.errorf(n, "recommendation %q: value is required with direction set, and only then", d.ID)
		}
	case KindReplicas:
		if a.Flag != "" || a.Setting != "" {
			p.errorf(n, "recommendation %q: a replicas action has no flag or setting", d.ID)
		}
		if a.Direction != DirectionRaise && a.Direction != DirectionLower {
			p.errorf(n, "recommendation %q: a replicas action needs direction raise or lower", d.ID)
		}
	case KindManual:
		if a.Note == "" {
			p.errorf(n, "recommendation %q: a manual action needs a note", d.ID)
		}
		if a.Flag != "" || a.Direction != "" {
			p.errorf(n, "recommendation %q: a manual action has no flag or direction", d.ID)
		}
	}
	return a
}
