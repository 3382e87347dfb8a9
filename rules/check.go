package rules

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Check validates rule files for `perfagent check rules`: everything
// Update checks (rulefmt, PromQL, labels and annotations with allowed
// values), and then that every metric a rule reads is a signal, an SLO
// target series or a series recorded by the files themselves (a warning,
// an error when strict), that alerting rules have a `for` (a warning), and,
// when knownRecommendations is not nil, that every recommendation id is in
// it (an error).
func Check(files []string, knownRecommendations map[string]bool, strict bool) (warnings, errs []error) {
	loaded, errs := NewLoader(LoaderOptions{}).Load(files)
	if len(errs) > 0 {
		return nil, errs
	}
	p := newParser()
	recorded := map[string]bool{}
	for _, f := range loaded {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recorded[r.Record] = true
				}
			}
		}
	}
	for _, f := range loaded {
		for gi, g := range f.Groups {
			for ri, r := range g.Rules {
				pos := f.pos[gi][ri]
				name := r.Alert
				kind := "alert"
				if name == "" {
					name, kind = r.Record, "record"
				}
				expr, err := p.ParseExpr(r.Expr)
				if err != nil {
					errs = append(errs, errorAt(f.Name, pos.expr, fmt.Errorf("%s %q: %w", kind, name, err)))
					continue
				}
				for _, vs := range vectorSelectors(expr) {
					metric := selectorName(vs)
					var problem string
					switch {
					case metric == "":
						problem = fmt.Sprintf("selector %s names no metric, so it cannot be checked against the signals", vs)
					case !isKnownSeries(metric) && !recorded[metric]:
						problem = fmt.Sprintf("reads %q, which is neither a signal (docs/signals.md) nor an SLO target series", metric)
					default:
						continue
					}
					e := errorAt(f.Name, pos.expr, fmt.Errorf("%s %q: %s", kind, name, problem))
					if strict {
						errs = append(errs, e)
					} else {
						warnings = append(warnings, e)
					}
				}
				if r.Alert == "" {
					continue
				}
				if r.For == 0 {
					warnings = append(warnings, errorAt(f.Name, pos.rule, fmt.Errorf("alert %q has no 'for': a single evaluation fires it", name)))
				}
				if knownRecommendations != nil {
					errs = append(errs, checkRecommendations(f.Name, pos.recommend, name, r.Annotations[AnnotationRecommend], knownRecommendations)...)
				}
			}
		}
	}
	return warnings, errs
}

func checkRecommendations(file string, at *yaml.Node, alert, annotation string, known map[string]bool) []error {
	var unknown []string
	for _, id := range Recommendations(annotation) {
		if !known[id] {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return []error{errorAt(file, at, fmt.Errorf("alert %q: unknown recommendation id(s) %s", alert, strings.Join(unknown, ", ")))}
}
