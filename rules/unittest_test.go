package rules

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func builtinTestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("builtin/tests/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no built-in rule tests: %v", err)
	}
	return files
}

func TestBuiltinUnitTests(t *testing.T) {
	files := builtinTestFiles(t)
	var out bytes.Buffer
	if UnitTest(files, &out) {
		t.Fatalf("built-in rule tests failed:\n%s", out.String())
	}
	if n := strings.Count(out.String(), "  SUCCESS\n"); n != len(files) {
		t.Fatalf("%d of %d files succeeded:\n%s", n, len(files), out.String())
	}
}

// TestBuiltinWithPromtool runs the same files through Debian's promtool
// (2.42), so their format stays compatible with it.
func TestBuiltinWithPromtool(t *testing.T) {
	const promtool = "/usr/bin/promtool"
	if _, err := os.Stat(promtool); err != nil {
		t.Skip("promtool not installed (Debian package prometheus); .ci/run installs it")
	}
	rulesFiles, err := filepath.Glob("builtin/*.yml")
	if err != nil || len(rulesFiles) == 0 {
		t.Fatalf("no built-in rule files: %v", err)
	}
	for _, args := range [][]string{
		append([]string{"check", "rules"}, rulesFiles...),
		append([]string{"test", "rules"}, builtinTestFiles(t)...),
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args[:2], " "), err, out)
		}
	}
}

// TestBuiltinTestsCoverEveryRule requires, for every built-in alert, a
// test where it fires and one where it does not.
func TestBuiltinTestsCoverEveryRule(t *testing.T) {
	loaded, errs := NewLoader(LoaderOptions{}).Load(BuiltinFiles())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range builtinTestFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tf testFile
		if err := yaml.Unmarshal(b, &tf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tg := range tf.Tests {
			for _, a := range tg.AlertRuleTests {
				if len(a.ExpAlerts) > 0 {
					firing[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	for _, n := range Names(loaded) {
		if !firing[n] || !quiet[n] {
			t.Errorf("alert %s: tested firing %v, not firing %v; want both", n, firing[n], quiet[n])
		}
	}
}

func TestUnitTest(t *testing.T) {
	for _, tc := range []struct {
		file       string
		wantFailed bool
		want       []string
	}{
		{file: "pass.yml", want: []string{"Unit Testing:  testdata/unittest/pass.yml\n  SUCCESS\n"}},
		{file: "gaps.yml", want: []string{"Unit Testing:  testdata/unittest/gaps.yml\n  SUCCESS\n"}},
		{file: "bad_series.yml", wantFailed: true, want: []string{"input_series: 3:40: parse error: unexpected character inside braces: '1'"}},
		{file: "wrong_alert.yml", wantFailed: true, want: []string{
			"alertname: LLMRequestErrors, time: 6m,",
			`0: Labels:{alertname="LLMRequestErrors", instance="a:8000"}`,
			"got:[]",
		}},
		{file: "wrong_sample.yml", wantFailed: true, want: []string{
			`expr: "llm_requests_waiting", time: 1m,`,
			`exp: {__name__="llm_requests_waiting", engine="vllm", instance="a:8000", model="m"} 2E+00`,
			`got: {__name__="llm_requests_waiting", engine="vllm", instance="a:8000", model="m"} 1E+00`,
		}},
		{file: "eval_error.yml", wantFailed: true, want: []string{"rule: Ambiguous, time: 0s, err: found duplicate series for the match group"}},
		{file: "bad_rules.yml", wantFailed: true, want: []string{`testdata/conventions.bad.yaml:16:21: alert "BadValues": label category is "gpu"`}},
		{file: "unknown_field.yml", wantFailed: true, want: []string{"testdata/unittest/unknown_field.yml:5: field input_serie not found in type rules.testGroup"}},
		{file: "no_rule_file.yml", wantFailed: true, want: []string{`rule_files "testdata/unittest/does_not_exist.yml": no file matches`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			// Each test group's storage lives in a temporary directory
			// that must be gone afterwards.
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			var out bytes.Buffer
			if failed := UnitTest([]string{filepath.Join("testdata/unittest", tc.file)}, &out); failed != tc.wantFailed {
				t.Errorf("failed = %v, want %v", failed, tc.wantFailed)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if left, err := os.ReadDir(tmp); err != nil || len(left) > 0 {
				t.Errorf("temporary directory holds %v (%v), want nothing", left, err)
			}
		})
	}
}
