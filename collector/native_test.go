package collector

import (
	"errors"
	"regexp"
	"testing"

	"github.com/optiinfra/perfagent/collector/profiles"
)

func TestToNativeHistograms(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{
			"quantile of buckets",
			`histogram_quantile(0.95, sum by (instance, model, le) (label_replace(rate(vllm:time_to_first_token_seconds_bucket[1m]), "model", "$1", "model_name", "(.*)")))`,
			`histogram_quantile(0.95, sum by (instance, model) (label_replace(rate(vllm:time_to_first_token_seconds[1m]), "model", "$1", "model_name", "(.*)")))`,
		},
		{
			"either of two histograms",
			`histogram_quantile(0.5, sum by (instance, le) (rate(a_bucket{x="1"}[1m])) or on (instance, le) sum by (instance, le) (rate(b_bucket[1m])))`,
			`histogram_quantile(0.5, sum by (instance) (rate(a{x="1"}[1m])) or on (instance) sum by (instance) (rate(b[1m])))`,
		},
		{
			"mean from sum and count",
			`sum by (instance) (rate(x_sum[1m])) / sum by (instance) (rate(x_count[1m]))`,
			`sum by (instance) ((histogram_sum(rate(x[1m])) or rate(x_sum[1m]))) / sum by (instance) ((histogram_count(rate(x[1m])) or rate(x_count[1m])))`,
		},
		{
			"resets of a counter named like a count",
			`resets(tgi_request_count[1m]) > 0`,
			`(resets(tgi_request[1m]) or resets(tgi_request_count[1m])) > 0`,
		},
		{
			"a bare count",
			`x_count{job="a"}`,
			`(histogram_count(x{job="a"}) or x_count{job="a"})`,
		},
		{
			"le kept where no bucket is read",
			`sum by (instance, le) (rate(y[1m]))`,
			`sum by (instance, le) (rate(y[1m]))`,
		},
		{
			"no histogram",
			`max by (instance) (vllm:num_requests_running)`,
			`max by (instance) (vllm:num_requests_running)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewParser().ParseExpr(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := toNativeHistograms(e)
			if err != nil {
				t.Fatal(err)
			}
			want, err := NewParser().ParseExpr(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if _, err := NewParser().ParseExpr(got.String()); err != nil {
				t.Errorf("the rewrite does not parse: %v", err)
			}
		})
	}
}

func TestToNativeHistogramsRefuses(t *testing.T) {
	for _, in := range []string{
		`rate(x_bucket{le="+Inf"}[1m])`,
		`sum_over_time(x_count[1m])`,
		`{__name__=~"x_(bucket|count)"}`,
		`deriv(x_sum[5m])`,
	} {
		e, err := NewParser().ParseExpr(in)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := toNativeHistograms(e); !errors.Is(err, errClassicOnly) {
			t.Errorf("%s: err = %v, want errClassicOnly", in, err)
		}
	}
}

// TestEmbeddedQueriesReadNativeHistograms: the built-in profiles all
// rewrite, so the embedded scrape keeps a histogram's one native series
// and none of its bucket series; a profile that cannot be rewritten
// keeps every query as written.
func TestEmbeddedQueriesReadNativeHistograms(t *testing.T) {
	builtin, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	queries, native, classic := embeddedQueries(builtin)
	if classic != nil || native == nil {
		t.Fatalf("the built-in profiles keep classic histograms: %v", classic)
	}
	keep, ok := readFamilies(queries)
	if !ok {
		t.Fatal("the built-in profiles read a selector without a metric name")
	}
	read := regexp.MustCompile("^(?:" + keep + ")$")
	for name, want := range map[string]bool{
		"vllm:time_to_first_token_seconds":        true,
		"vllm:time_to_first_token_seconds_bucket": false,
		"vllm:request_prompt_tokens":              true,
		"vllm:request_prompt_tokens_sum":          true, // the original arm of the or
		"tgi_request_count":                       true,
		"vllm:num_requests_running":               true,
	} {
		if read.MatchString(name) != want {
			t.Errorf("%s kept %v, want %v", name, !want, want)
		}
	}

	p, perrs := ParseProfile("any.yml", []byte("groups:\n  - name: any\n    rules:\n      - record: llm_instance_info\n        expr: group by (instance) (x_count)\n        labels: {engine: any}\n      - record: llm_requests\n        expr: sum_over_time(x_count[1m])\n        labels: {engine: any}\n"))
	if len(perrs) > 0 {
		t.Fatal(perrs)
	}
	queries, native, classic = embeddedQueries(append(builtin, p))
	if native != nil || !errors.Is(classic, errClassicOnly) {
		t.Fatalf("native %v, reason %v; want classic histograms and errClassicOnly", native, classic)
	}
	keep, _ = readFamilies(queries)
	if !regexp.MustCompile("^(?:" + keep + ")$").MatchString("vllm:time_to_first_token_seconds_bucket") {
		t.Error("with classic histograms the bucket series must be kept")
	}
}
