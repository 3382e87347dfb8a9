package main

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := `goos: linux
pkg: github.com/optiinfra/perfagent/collector
BenchmarkCollectionCycle/instances=10-2   5   20000000 ns/op   77.00 queries/cycle   100 B/op
BenchmarkCollectionCycle/instances=100-2  5  160000000 ns/op   77.00 queries/cycle   900 B/op
BenchmarkOther-2  10  50 ns/op
PASS
`
	res, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("results = %d, want 3", len(res))
	}
	if r := res[1]; r.Name != "BenchmarkCollectionCycle/instances=100" || r.Baseline != "BenchmarkCollectionCycle/instances=10" || r.RatioToBaseline != 8 || r.Metrics["queries/cycle"] != 77 {
		t.Errorf("second result = %+v", r)
	}
	if r := res[2]; r.Baseline != "BenchmarkOther" || r.RatioToBaseline != 1 {
		t.Errorf("third result = %+v", r)
	}
}
