package rules

import (
	"testing"
	"time"
)

func TestLookback(t *testing.T) {
	for expr, want := range map[string]time.Duration{
		`llm_requests_waiting > 5`:                                                       0,
		`avg_over_time(llm_requests_waiting[5m]) > 5`:                                    5 * time.Minute,
		`max_over_time(llm_requests_waiting[10m] offset 5m)`:                             15 * time.Minute,
		`max_over_time(avg_over_time(llm_requests_waiting[1m])[30m:1m]) and rate(x[2m])`: 30 * time.Minute,
	} {
		e, err := newParser().ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := lookback(e); got != want {
			t.Errorf("lookback(%s) = %s, want %s", expr, got, want)
		}
	}
}

func TestSelectorName(t *testing.T) {
	for expr, want := range map[string]string{
		`llm_requests_waiting{model="m"}`:        "llm_requests_waiting",
		`{__name__="llm_requests_waiting"}`:      "llm_requests_waiting",
		`{__name__=~"llm_.*",instance="a:8000"}`: "",
	} {
		e, err := newParser().ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		sels := vectorSelectors(e)
		if len(sels) != 1 {
			t.Fatalf("%s: %d selectors", expr, len(sels))
		}
		if got := selectorName(sels[0]); got != want {
			t.Errorf("selectorName(%s) = %q, want %q", expr, got, want)
		}
	}
}
