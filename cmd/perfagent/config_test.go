package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/workflow"
)

func TestExampleConfigsAreValid(t *testing.T) {
	for _, f := range []string{"../../examples/perfagent.yml", "../../examples/perfagent-remote.yml"} {
		cfg, err := config.LoadFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, errs := loadProfiles(f, cfg); len(errs) > 0 {
			t.Errorf("%s: %v", f, errs)
		}
	}
}

func TestCheckAndTestRulesCommands(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	_ = os.WriteFile(bad, []byte(`groups:
  - name: g
    rules:
      - alert: Odd
        expr: some_metric_we_do_not_know > 1
        labels: {category: memory, severity: warning}
        annotations: {summary: s, description: d, runbook_url: https://example.invalid/r, recommend: buy_more_gpus}
`), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "rules", "builtin:bottlenecks.yml"}, &stdout, &stderr); code != exitSuccess {
		t.Errorf("check rules builtin = %d\n%s", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"check", "rules", bad}, &stdout, &stderr); code != exitFailure {
		t.Errorf("check rules bad = %d, want %d", code, exitFailure)
	}
	for _, want := range []string{`bad.yml:7`, "buy_more_gpus", "some_metric_we_do_not_know"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("check rules output lacks %q:\n%s", want, stderr.String())
		}
	}
	tests, _ := filepath.Glob("../../rules/builtin/tests/*.yml")
	if len(tests) == 0 {
		t.Fatal("no built-in rule tests")
	}
	stdout.Reset()
	if code := run(append([]string{"test", "rules"}, tests...), &stdout, &stderr); code != exitSuccess {
		t.Errorf("test rules = %d\n%s", code, stdout.String())
	}
}

// TestConfigKnowsTheValidatorsNeeds: the configuration checks the
// workflow window against the validator's numbers, which it cannot import.
func TestConfigKnowsTheValidatorsNeeds(t *testing.T) {
	if config.WorkflowMinSamples != workflow.DefaultMinSamples || config.DefaultWorkflowWindow != workflow.DefaultSettings().Window {
		t.Errorf("config checks windows against %d samples and a %s default window; the workflow package uses %d and %s",
			config.WorkflowMinSamples, config.DefaultWorkflowWindow, workflow.DefaultMinSamples, workflow.DefaultSettings().Window)
	}
}

// TestCheckConfigSaysHowToMigrate: a deprecated field passes the check
// with a warning that shows what to write instead.
func TestCheckConfigSaysHowToMigrate(t *testing.T) {
	f := filepath.Join(t.TempDir(), "perfagent.yml")
	if err := os.WriteFile(f, []byte("source: {targets: [{url: 'http://a:1/metrics'}]}\nworkflow: {alertmanagers: ['http://am:9093']}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "config", f}, &stdout, &stderr); code != exitSuccess {
		t.Fatalf("check config = %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "SUCCESS: embedded mode, 5 engine profiles, 1 Alertmanager configurations") {
		t.Errorf("stdout %q", stdout.String())
	}
	for _, want := range []string{"WARNING:", "workflow.alertmanagers is deprecated", "alerting:", "- am:9093"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
