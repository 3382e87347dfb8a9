package rules

import (
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/optiinfra/perfagent/config"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Label and annotation names of perfagent's rule conventions.
const (
	LabelCategory   = "category"
	LabelSeverity   = "severity"
	LabelBottleneck = "bottleneck"
	// LabelForecast marks a rule that warns of a bottleneck before it
	// happens; its value is the resource forecast (kv_cache, queue).
	LabelForecast = "forecast"

	AnnotationSummary     = "summary"
	AnnotationDescription = "description"
	AnnotationRunbookURL  = "runbook_url"
	AnnotationRecommend   = "recommend"
)

// requiredAnnotations must be present and non-empty on every alerting rule.
var requiredAnnotations = []string{AnnotationSummary, AnnotationDescription, AnnotationRunbookURL, AnnotationRecommend}

// recommendationIDRE is the form of one id in annotations.recommend.
var recommendationIDRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// LoaderOptions configure a Loader.
type LoaderOptions struct {
	// Disabled are alert names whose rules are dropped after validation,
	// the way to switch built-in rules off.
	Disabled []string
	// Logger receives rulefmt's warnings; nil discards them.
	Logger *slog.Logger
}

// Loader reads bottleneck rule files: rulefmt, then perfagent's
// conventions (labels.category, labels.severity, annotations.summary,
// description, runbook_url and recommend), with file:line:col on every
// error.
type Loader struct {
	disabled map[string]bool
	logger   *slog.Logger
	parser   parser.Parser
}

// NewLoader returns a Loader.
func NewLoader(o LoaderOptions) *Loader {
	l := &Loader{disabled: map[string]bool{}, logger: o.Logger, parser: newParser()}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	for _, n := range o.Disabled {
		l.disabled[n] = true
	}
	return l
}

// Disabled are the alert names the loader drops.
func (l *Loader) Disabled() []string {
	names := make([]string, 0, len(l.disabled))
	for n := range l.disabled {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// RuleFile is one loaded rule file.
type RuleFile struct {
	// Name is the path, or BuiltinPrefix and the name for the built-in pack.
	Name string
	// Groups are the file's groups without disabled rules; groups left
	// empty are dropped.
	Groups []rulefmt.RuleGroup
	// pos holds, per group and rule, where the rule is in the file.
	pos [][]rulePos
	// disabled are the alert names dropped as disabled.
	disabled []string
}

// rulePos locates a rule and the fields checks point at.
type rulePos struct {
	rule, expr, recommend *yaml.Node
}

// Load reads files in order. On any error it returns every error found,
// each naming file:line:col where the file tells.
func (l *Loader) Load(files []string) ([]*RuleFile, []error) {
	var (
		out  []*RuleFile
		errs []error
	)
	for _, f := range files {
		rf, fe := l.loadFile(f)
		errs = append(errs, fe...)
		if rf != nil {
			out = append(out, rf)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// Names returns the alert names of the loaded files, in file order.
func Names(files []*RuleFile) []string {
	var out []string
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					out = append(out, r.Alert)
				}
			}
		}
	}
	return out
}

func readRuleFile(name string) ([]byte, error) {
	if isBuiltin(name) {
		return readBuiltin(name)
	}
	return os.ReadFile(name)
}

func (l *Loader) loadFile(name string) (*RuleFile, []error) {
	content, err := readRuleFile(name)
	if err != nil {
		return nil, []error{&PosError{File: name, Err: fmt.Errorf("reading rule file: %w", err)}}
	}
	return l.parse(name, content)
}

// parse checks and loads the content of the rule file name.
func (l *Loader) parse(name string, content []byte) (*RuleFile, []error) {
	doc, derr := parseNodes(content)
	groups, rerrs := config.ParseRuleGroups(content, l.parser, l.logger)
	var errs []error
	seen := map[string]bool{}
	for _, e := range rerrs {
		for _, pe := range positioned(name, e, doc) {
			// rulefmt decodes twice (values, then nodes) and reports a
			// syntax or type error once per pass, naming different types.
			key, _, _ := strings.Cut(pe.Error(), " into ")
			if !seen[key] {
				seen[key] = true
				errs = append(errs, pe)
			}
		}
	}
	if groups == nil || derr != nil {
		if len(errs) == 0 && derr != nil {
			errs = append(errs, lineError(name, derr.Error()))
		}
		return nil, errs
	}
	rf := &RuleFile{Name: name}
	for gi, g := range groups.Groups {
		var gn groupNodes
		if gi < len(doc.groups) {
			gn = doc.groups[gi]
		}
		kept := g
		kept.Rules = nil
		var pos []rulePos
		for ri, r := range g.Rules {
			var rn ruleNodes
			if ri < len(gn.rules) {
				rn = gn.rules[ri]
			}
			if r.Alert != "" {
				errs = append(errs, checkConventions(name, g, r, gn, rn)...)
			}
			if r.Alert != "" && l.disabled[r.Alert] {
				rf.disabled = append(rf.disabled, r.Alert)
				continue
			}
			kept.Rules = append(kept.Rules, r)
			_, rec := mappingEntry(rn.annotations, AnnotationRecommend)
			pos = append(pos, rulePos{rule: rn.name, expr: rn.expr, recommend: rec})
		}
		if len(kept.Rules) == 0 {
			continue
		}
		rf.Groups = append(rf.Groups, kept)
		rf.pos = append(rf.pos, pos)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return rf, nil
}

// checkConventions applies perfagent's label and annotation rules to one
// alerting rule; rn gives the positions.
func checkConventions(file string, g rulefmt.RuleGroup, r rulefmt.Rule, gn groupNodes, rn ruleNodes) []error {
	var errs []error
	at := func(n *yaml.Node, format string, args ...any) {
		if n == nil {
			n = rn.name
		}
		if n == nil {
			n = rn.node
		}
		errs = append(errs, errorAt(file, n, fmt.Errorf("alert %q: "+format, append([]any{r.Alert}, args...)...)))
	}
	for _, c := range []struct {
		name    string
		allowed []string
	}{
		{LabelCategory, categoryNames()},
		{LabelSeverity, severityNames()},
	} {
		v, inRule := r.Labels[c.name]
		if !inRule {
			var inGroup bool
			if v, inGroup = g.Labels[c.name]; !inGroup {
				at(rn.labelsKey, "label %q is missing (one of %s)", c.name, strings.Join(c.allowed, ", "))
				continue
			}
		}
		if !slices.Contains(c.allowed, v) {
			_, n := mappingEntry(rn.labels, c.name)
			if !inRule {
				_, n = mappingEntry(gn.labels, c.name)
			}
			at(n, "label %s is %q, not one of %s", c.name, v, strings.Join(c.allowed, ", "))
		}
	}
	for _, a := range requiredAnnotations {
		if strings.TrimSpace(r.Annotations[a]) == "" {
			n, _ := mappingEntry(rn.annotations, a)
			if n == nil {
				n = rn.annotationsKey
			}
			at(n, "annotation %q is missing or empty", a)
		}
	}
	if rec := strings.TrimSpace(r.Annotations[AnnotationRecommend]); rec != "" {
		_, n := mappingEntry(rn.annotations, AnnotationRecommend)
		for _, id := range strings.Split(rec, ",") {
			if id = strings.TrimSpace(id); !recommendationIDRE.MatchString(id) {
				at(n, "annotation recommend: %q is not a recommendation id (lower_snake_case, comma-separated)", id)
			}
		}
	}
	return errs
}

// Recommendations splits annotations.recommend into ids.
func Recommendations(annotation string) []string {
	var out []string
	for _, id := range strings.Split(annotation, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}
