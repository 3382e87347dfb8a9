package rules

import (
	"os"
	"strings"
	"testing"
)

// TestDocsDescribeBuiltinRules keeps docs/rules.md in step with the
// built-in pack: a section per alert (the runbook URLs point at it) with
// the expression as written, and every recommendation id in the id table;
// docs/rules.md or docs/forecasts.md shows the expression of every
// recording rule.
func TestDocsDescribeBuiltinRules(t *testing.T) {
	b, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	b, err = os.ReadFile("../docs/forecasts.md")
	if err != nil {
		t.Fatal(err)
	}
	forecasts := string(b)
	loaded, errs := NewLoader(LoaderOptions{}).Load(BuiltinFiles())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, f := range loaded {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					shown := "```promql\n" + strings.TrimRight(r.Expr, "\n") + "\n```"
					if !strings.Contains(forecasts, shown) && !strings.Contains(doc, shown) {
						t.Errorf("neither docs/rules.md nor docs/forecasts.md shows the expression of %s{%v} as written", r.Record, r.Labels)
					}
					continue
				}
				if !strings.Contains(doc, "\n### "+r.Alert+"\n") {
					t.Errorf("docs/rules.md has no section %q", "### "+r.Alert)
				}
				if want := "#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations[AnnotationRunbookURL], want) {
					t.Errorf("%s: runbook_url %q does not end in %s", r.Alert, r.Annotations[AnnotationRunbookURL], want)
				}
				if !strings.Contains(doc, "```promql\n"+strings.TrimRight(r.Expr, "\n")+"\n```") {
					t.Errorf("docs/rules.md does not show the expression of %s as written", r.Alert)
				}
				for _, id := range Recommendations(r.Annotations[AnnotationRecommend]) {
					if !strings.Contains(doc, "| `"+id+"` |") {
						t.Errorf("%s recommends %s, which the id table of docs/rules.md lacks", r.Alert, id)
					}
				}
			}
		}
	}
	for id := range catalog {
		if !strings.Contains(doc, "| `"+id+"` |") {
			t.Errorf("recommendation id %s is not in docs/rules.md", id)
		}
	}
}

// TestDocsExampleRulePassesCheck checks the example of "Writing your own
// rules" with Check, strictly.
func TestDocsExampleRulePassesCheck(t *testing.T) {
	b, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## Writing your own rules\n")
	if !ok {
		t.Fatal("docs/rules.md has no section \"Writing your own rules\"")
	}
	_, example, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the section has no YAML example")
	}
	example, _, _ = strings.Cut(example, "```")
	warnings, errs := Check([]string{tempRuleFile(t, example)}, catalog, true)
	if len(warnings) > 0 || len(errs) > 0 {
		t.Fatalf("example rule: warnings %v, errors %v", warnings, errs)
	}
}
