package collector

import (
	"regexp"
	"testing"

	"github.com/optiinfra/perfagent/collector/profiles"
)

func TestReadFamilies(t *testing.T) {
	builtin, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	queries, err := profileQueries(builtin)
	if err != nil {
		t.Fatal(err)
	}
	keep, ok := readFamilies(queries)
	if !ok {
		t.Fatal("the built-in profiles read a selector without a metric name")
	}
	read := regexp.MustCompile("^(?:" + keep + ")$")
	for name, want := range map[string]bool{
		"vllm:num_requests_running":               true,
		"vllm:time_to_first_token_seconds_bucket": true,
		"vllm:cache_config_info":                  true, // the settings query
		"sglang:max_running_requests":             true, // the settings query's regex
		"tgi_batch_max_total_tokens":              true,
		"vllm:time_to_first_token_seconds_sum":    false,
		"vllm:request_params_n_bucket":            false,
		"python_gc_objects_collected_total":       false,
		"vllm_num_requests_running":               false, // a dot in a name is no wildcard
	} {
		if read.MatchString(name) != want {
			t.Errorf("%s kept %v, want %v", name, !want, want)
		}
	}

	p, perrs := ParseProfile("any.yml", []byte("groups:\n  - name: any\n    rules:\n      - record: llm_instance_info\n        expr: group by (instance, model) ({job=\"x\"})\n        labels: {engine: any}\n"))
	if len(perrs) > 0 {
		t.Fatal(perrs)
	}
	queries, err = profileQueries(append(builtin, p))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := readFamilies(queries); ok {
		t.Error("a selector without a metric name must keep every family")
	}
}
