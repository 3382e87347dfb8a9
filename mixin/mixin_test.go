package mixin

import (
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/internal/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var update = flag.Bool("update", false, "write the rendered mixin to out/")

// TestRendered fails when out/ differs from what mixin.libsonnet renders;
// make mixin (go test -run TestRendered -update) writes it.
func TestRendered(t *testing.T) {
	got, err := Render(".")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, "out", got, "dashboards/*.json", *update, "run make mixin")
	// The Kubernetes example carries the alerts; kustomize reads only files
	// below its directory.
	testutil.Golden(t, "../examples/kubernetes", map[string][]byte{"prometheusrule.yaml": got["prometheusrule.yaml"]}, "prometheusrule.yaml", *update, "run make mixin")
}

// TestRulesFollowTheConventions checks the rendered rules as Prometheus
// loads them, and the alerts as the monitoring-mixins style guide asks:
// a severity, a summary, a description and a runbook.
func TestRulesFollowTheConventions(t *testing.T) {
	got, err := Render(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"alerts.yaml", "rules.yaml", "detection/alerts.yaml", "detection/rules.yaml"} {
		groups, errs := rulefmt.Parse(got[file], false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
		if len(errs) > 0 {
			t.Fatalf("%s: %v", file, errs)
		}
		if len(groups.Groups) == 0 && file != "rules.yaml" {
			t.Fatalf("%s has no groups", file)
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				if !strings.HasPrefix(r.Alert, "PerfAgent") && !strings.HasPrefix(r.Alert, "LLM") {
					t.Errorf("%s: alert %s: perfagent's alerts are named PerfAgent… (about the agent) or LLM… (bottlenecks)", file, r.Alert)
				}
				if s := r.Labels["severity"]; s != "info" && s != "warning" && s != "critical" {
					t.Errorf("%s: alert %s: severity %q", file, r.Alert, s)
				}
				for _, a := range []string{"summary", "description", "runbook_url"} {
					if r.Annotations[a] == "" {
						t.Errorf("%s: alert %s lacks the %s annotation", file, r.Alert, a)
					}
				}
				checkRunbook(t, r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
}

// TestPromtool runs promtool check rules on the rendered rules and
// promtool test rules on the mixin's unit tests (tests/*.yaml), with
// Debian's promtool, which CI installs.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus); .ci/run installs it")
	}
	if out, err := exec.Command(promtool, "check", "rules", "out/alerts.yaml", "out/rules.yaml", "out/detection/alerts.yaml", "out/detection/rules.yaml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	tests, _ := filepath.Glob("tests/*.yaml")
	if len(tests) == 0 {
		t.Fatal("no unit tests in tests/")
	}
	if out, err := exec.Command(promtool, append([]string{"test", "rules"}, tests...)...).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// TestEveryAgentAlertIsUnitTested fails when an alert about the agent
// (out/alerts.yaml) has no promtool unit test in tests/alerts.yaml that
// expects it to fire.
func TestEveryAgentAlertIsUnitTested(t *testing.T) {
	var rendered ruleGroups
	testutil.ReadYAML(t, "out/alerts.yaml", &rendered)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	testutil.ReadYAML(t, "tests/alerts.yaml", &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rendered.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] {
				t.Errorf("alert %s: no test in tests/alerts.yaml expects it to fire", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("out/alerts.yaml has no alerts")
	}
}

// repoDocs is where runbook URLs point into this repository.
const repoDocs = "https://github.com/optiinfra/perfagent/blob/main/"

// checkRunbook checks that a runbook URL into this repository names a file
// that exists and, with a fragment, one of its headings.
func checkRunbook(t *testing.T, alert, runbook string) {
	t.Helper()
	rel, ok := strings.CutPrefix(runbook, repoDocs)
	if !ok {
		return
	}
	file, fragment, _ := strings.Cut(rel, "#")
	b, err := os.ReadFile(filepath.Join("..", file))
	if err != nil {
		t.Errorf("alert %s: runbook %s: %v", alert, runbook, err)
		return
	}
	if fragment == "" {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " "); ok && strings.HasPrefix(line, "#") &&
			strings.ReplaceAll(strings.ToLower(title), " ", "-") == fragment {
			return
		}
	}
	t.Errorf("alert %s: runbook %s: %s has no heading #%s", alert, runbook, file, fragment)
}
