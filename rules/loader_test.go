package rules

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoaderGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, errs := NewLoader(LoaderOptions{}).Load([]string{f}); len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
		})
	}
}

func TestLoaderBadFiles(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{
			file: "testdata/conventions.bad.yaml",
			want: []string{
				`testdata/conventions.bad.yaml:4:16: alert "NoLabels": label "category" is missing (one of memory, latency, throughput, utilization, errors)`,
				`testdata/conventions.bad.yaml:4:16: alert "NoLabels": label "severity" is missing (one of info, warning, critical)`,
				`testdata/conventions.bad.yaml:16:21: alert "BadValues": label category is "gpu", not one of memory, latency, throughput, utilization, errors`,
				`testdata/conventions.bad.yaml:17:21: alert "BadValues": label severity is "page", not one of info, warning, critical`,
				`testdata/conventions.bad.yaml:20:11: alert "BadValues": annotation "description" is missing or empty`,
				`testdata/conventions.bad.yaml:22:22: alert "BadValues": annotation recommend: "" is not a recommendation id (lower_snake_case, comma-separated)`,
				`testdata/conventions.bad.yaml:22:22: alert "BadValues": annotation recommend: "Scale-In" is not a recommendation id (lower_snake_case, comma-separated)`,
				`testdata/conventions.bad.yaml:23:16: alert "NoAnnotations": annotation "summary" is missing or empty`,
				`testdata/conventions.bad.yaml:23:16: alert "NoAnnotations": annotation "description" is missing or empty`,
				`testdata/conventions.bad.yaml:23:16: alert "NoAnnotations": annotation "runbook_url" is missing or empty`,
				`testdata/conventions.bad.yaml:23:16: alert "NoAnnotations": annotation "recommend" is missing or empty`,
			},
		},
		{
			file: "testdata/promql.bad.yaml",
			want: []string{`testdata/promql.bad.yaml:5:15: group "custom", rule 1, "BadExpr": could not parse expression: 1:23: parse error: unexpected end of input`},
		},
		{
			file: "testdata/template.bad.yaml",
			want: []string{`testdata/template.bad.yaml:11:11: group "custom", rule 1, "BadTemplate": annotation "summary": template: __alert_BadTemplate:1: unclosed action`},
		},
		{
			file: "testdata/unknown_field.bad.yaml",
			want: []string{`testdata/unknown_field.bad.yaml:6: field labls not found in type rulefmt.Rule`},
		},
		{
			file: "testdata/yaml_syntax.bad.yaml",
			want: []string{`testdata/yaml_syntax.bad.yaml:3: did not find expected '-' indicator`},
		},
		{
			file: "testdata/no_name.bad.yaml",
			want: []string{`testdata/no_name.bad.yaml:4:9: group "custom", rule 1, "": one of 'record' or 'alert' must be set`},
		},
		{
			file: "testdata/type.bad.yaml",
			want: []string{"testdata/type.bad.yaml:3: cannot unmarshal !!int `5` into []rulefmt.Rule"},
		},
		{
			file: "testdata/missing.yaml",
			want: []string{`testdata/missing.yaml: reading rule file: open testdata/missing.yaml: no such file or directory`},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			files, errs := NewLoader(LoaderOptions{}).Load([]string{tc.file})
			if files != nil {
				t.Errorf("got files %v with errors", files)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("errors:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
		})
	}
}

func TestLoaderDisabled(t *testing.T) {
	all, errs := NewLoader(LoaderOptions{}).Load(BuiltinFiles())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if !slices.Contains(Names(all), "LLMKVCachePressure") {
		t.Fatalf("built-in pack lacks LLMKVCachePressure: %v", Names(all))
	}
	some, errs := NewLoader(LoaderOptions{Disabled: []string{"LLMKVCachePressure", "LLMRequestErrors"}}).Load(BuiltinFiles())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := slices.DeleteFunc(Names(all), func(n string) bool { return n == "LLMKVCachePressure" || n == "LLMRequestErrors" })
	if got := Names(some); !slices.Equal(got, want) {
		t.Errorf("names with two disabled:\n got  %v\n want %v", got, want)
	}
	// LLMRequestErrors is alone in its group: the group goes too.
	for _, f := range some {
		for _, g := range f.Groups {
			if g.Name == "perfagent-errors" {
				t.Errorf("empty group %s kept", g.Name)
			}
		}
	}
}

func TestRecommendations(t *testing.T) {
	for in, want := range map[string][]string{
		"":                           nil,
		"scale_out":                  {"scale_out"},
		" scale_out , fp8_kv_cache,": {"scale_out", "fp8_kv_cache"},
	} {
		if got := Recommendations(in); !slices.Equal(got, want) {
			t.Errorf("Recommendations(%q) = %v, want %v", in, got, want)
		}
	}
}
