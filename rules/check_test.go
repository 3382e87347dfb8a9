package rules

import (
	"slices"
	"strings"
	"testing"
)

// catalog is the recommendation catalog the issue names; the recommender
// will own it.
var catalog = map[string]bool{
	"raise_gpu_memory_utilization": true, "lower_max_num_seqs": true, "raise_max_num_seqs": true,
	"fp8_kv_cache": true, "raise_max_num_batched_tokens": true, "lower_max_num_batched_tokens": true,
	"long_prefill_threshold": true, "enable_prefix_caching": true, "raise_tensor_parallel": true, "fp8_weights": true, "int4_awq_weights": true, "prefix_aware_routing": true,
	"scale_out": true, "scale_in": true, "raise_schedule_conservativeness": true,
	"lower_schedule_conservativeness": true, "raise_mem_fraction_static": true,
	"raise_max_concurrent_requests": true, "raise_max_running_requests": true,
	"load_aware_routing": true, "investigate_errors": true, "raise_frontend_workers": true,
	"lower_num_speculative_tokens": true, "disable_speculative_decoding": true, "enable_speculative_decoding": true,
}

func errorStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestCheckBuiltinIsClean(t *testing.T) {
	warnings, errs := Check(BuiltinFiles(), catalog, true)
	if len(warnings) > 0 || len(errs) > 0 {
		t.Fatalf("built-in pack:\nwarnings: %v\nerrors: %v", warnings, errs)
	}
}

func TestCheck(t *testing.T) {
	const f = "testdata/check.yaml"
	signalProblems := []string{
		`testdata/check.yaml:5:15: alert "ReadsRawMetric": reads "vllm:num_requests_waiting", which is neither a signal (docs/signals.md) nor an SLO target series`,
		`testdata/check.yaml:16:15: alert "NoFor": selector {__name__=~"llm_.*"} names no metric, so it cannot be checked against the signals`,
	}
	noFor := `testdata/check.yaml:15:16: alert "NoFor" has no 'for': a single evaluation fires it`
	unknownID := `testdata/check.yaml:14:22: alert "ReadsRawMetric": unknown recommendation id(s) buy_more_gpus`
	for _, tc := range []struct {
		name         string
		known        map[string]bool
		strict       bool
		wantWarnings []string
		wantErrs     []string
	}{
		{name: "lenient without catalog", wantWarnings: append(slices.Clone(signalProblems[:1]), signalProblems[1], noFor)},
		{name: "lenient with catalog", known: catalog, wantWarnings: append(slices.Clone(signalProblems), noFor), wantErrs: []string{unknownID}},
		{name: "strict with catalog", known: catalog, strict: true, wantWarnings: []string{noFor}, wantErrs: append(slices.Clone(signalProblems[:1]), unknownID, signalProblems[1])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warnings, errs := Check([]string{f}, tc.known, tc.strict)
			if got := errorStrings(warnings); !slices.Equal(got, tc.wantWarnings) {
				t.Errorf("warnings:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(tc.wantWarnings, "\n      "))
			}
			if got := errorStrings(errs); !slices.Equal(got, tc.wantErrs) {
				t.Errorf("errors:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(tc.wantErrs, "\n      "))
			}
		})
	}
}

func TestCheckReportsLoadErrors(t *testing.T) {
	_, errs := Check([]string{"testdata/conventions.bad.yaml"}, nil, false)
	if len(errs) != 11 {
		t.Fatalf("got %d errors, want the loader's 11: %v", len(errs), errs)
	}
}

func TestCheckAcceptsRecordedSeries(t *testing.T) {
	warnings, errs := Check([]string{"testdata/conventions.good.yaml"}, catalog, true)
	if len(warnings) > 0 || len(errs) > 0 {
		t.Fatalf("a rule reading a series its file records: warnings %v, errors %v", warnings, errs)
	}
}
