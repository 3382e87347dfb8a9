package collector

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

// Profile is one engine's recording-rule file: how every signal is
// computed from that engine's own metrics, one query per rule for all
// instances of the engine.
type Profile struct {
	// Engine is the group's name, e.g. "vllm".
	Engine string
	// File is where the profile came from ("builtin:vllm.yml" or a path).
	File string
	// Rules are the recording rules in file order; the first records
	// InstanceInfoSignal.
	Rules []ProfileRule
}

// ProfileRule is one recording rule of a profile.
type ProfileRule struct {
	Record string
	Expr   parser.Expr
	Labels labels.Labels
	// Line is the rule's line in File.
	Line int
}

// NewParser returns the PromQL parser perfagent uses everywhere.
func NewParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// LoadProfiles reads the built-in profiles from builtin and then the files
// matching each pattern in files (relative to dir). A file whose group has
// the name of an already loaded engine replaces that profile, so users can
// override a built-in one. Every problem is reported, with file and line.
func LoadProfiles(builtin fs.FS, dir string, files []string) ([]*Profile, []error) {
	var (
		out  []*Profile
		errs []error
	)
	add := func(p *Profile) {
		for i, q := range out {
			if q.Engine == p.Engine {
				out[i] = p
				return
			}
		}
		out = append(out, p)
	}
	names, err := fs.Glob(builtin, "*.yml")
	if err != nil {
		return nil, []error{fmt.Errorf("listing built-in profiles: %w", err)}
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := fs.ReadFile(builtin, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading built-in profile %s: %w", name, err))
			continue
		}
		p, perrs := ParseProfile("builtin:"+path.Base(name), b)
		errs = append(errs, perrs...)
		if p != nil {
			add(p)
		}
	}
	for _, pattern := range files {
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			errs = append(errs, fmt.Errorf("profile file pattern %q: %w", pattern, err))
			continue
		}
		if len(matches) == 0 {
			errs = append(errs, fmt.Errorf("profile file pattern %q matches no file", pattern))
		}
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("reading profile: %w", err))
				continue
			}
			p, perrs := ParseProfile(m, b)
			errs = append(errs, perrs...)
			if p != nil {
				add(p)
			}
		}
	}
	return out, errs
}

// ParseProfile parses one profile file. file names it in errors.
func ParseProfile(file string, content []byte) (*Profile, []error) {
	p := NewParser()
	groups, errs := config.ParseRuleGroups(content, p, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		out := make([]error, len(errs))
		for i, err := range errs {
			out[i] = fmt.Errorf("%s: %w", file, err)
		}
		return nil, out
	}
	lines := ruleLines(content)
	if len(groups.Groups) != 1 {
		return nil, []error{fmt.Errorf("%s: a profile holds exactly one rule group named after its engine, found %d groups", file, len(groups.Groups))}
	}
	g := groups.Groups[0]
	prof := &Profile{Engine: g.Name, File: file}
	var perrs []error
	if err := config.CheckEngineName(g.Name); err != nil {
		perrs = append(perrs, fmt.Errorf("%s: group name: %w", file, err))
	}
	for i, r := range g.Rules {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		where := fmt.Sprintf("%s:%d: rule %d", file, line, i+1)
		if r.Record == "" {
			perrs = append(perrs, fmt.Errorf("%s: profiles hold recording rules only; alerting rule %q belongs in a bottleneck rule file", where, r.Alert))
			continue
		}
		if i == 0 && r.Record != signals.InstanceInfo {
			perrs = append(perrs, fmt.Errorf("%s: the first rule must record %s (one series per serving instance), not %s", where, signals.InstanceInfo, r.Record))
		}
		if r.Labels[signals.LabelEngine] != g.Name {
			perrs = append(perrs, fmt.Errorf("%s (%s): labels.engine is %q; it must be the group name %q", where, r.Record, r.Labels[signals.LabelEngine], g.Name))
		}
		expr, err := p.ParseExpr(r.Expr)
		if err != nil {
			perrs = append(perrs, fmt.Errorf("%s (%s): %w", where, r.Record, err))
			continue
		}
		prof.Rules = append(prof.Rules, ProfileRule{Record: r.Record, Expr: expr, Labels: labels.FromMap(r.Labels), Line: line})
	}
	if len(g.Rules) == 0 {
		perrs = append(perrs, fmt.Errorf("%s: group %s has no rules", file, g.Name))
	}
	if len(perrs) > 0 {
		return nil, perrs
	}
	return prof, nil
}

// ruleLines returns the line of each rule of the first group, in order;
// rulefmt keeps no positions for valid rules.
func ruleLines(content []byte) []int {
	var doc struct {
		Groups []struct {
			Rules []yaml.Node `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(content, &doc); err != nil || len(doc.Groups) == 0 {
		return nil
	}
	lines := make([]int, len(doc.Groups[0].Rules))
	for i, n := range doc.Groups[0].Rules {
		lines[i] = n.Line
	}
	return lines
}

// WithRange returns a copy of expr in which every range selector covers
// window. Profiles are written with one window; the configuration sets the
// one that fits the source's scrape interval.
func WithRange(expr parser.Expr, window time.Duration) (parser.Expr, error) {
	p := NewParser()
	cp, err := p.ParseExpr(expr.String())
	if err != nil {
		return nil, fmt.Errorf("re-parsing %q: %w", expr.String(), err)
	}
	parser.Inspect(cp, func(n parser.Node, _ []parser.Node) error {
		if ms, ok := n.(*parser.MatrixSelector); ok {
			ms.Range = window
		}
		return nil
	})
	return cp, nil
}

// ErrNoProfiles is returned when no engine profile could be loaded.
var ErrNoProfiles = errors.New("no engine profiles loaded")
