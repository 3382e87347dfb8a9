package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
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

var update = flag.Bool("update", false, "rewrite the golden table in testdata")

// TestRenderTable renders the README's table from a fixture run and
// compares it with testdata/measured.golden.
func TestRenderTable(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parse(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	got, err := renderTable(res)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "measured.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("table differs from %s (go test ./internal/benchreport -update):\n%s", golden, got)
	}

	// A benchmark the table needs and the run lacks is named.
	_, err = renderTable(slices.DeleteFunc(res, func(r Result) bool { return r.Name == "BenchmarkFleetFootprint/servers=1000" }))
	if err == nil || !strings.Contains(err.Error(), "BenchmarkFleetFootprint/servers=1000") {
		t.Errorf("without a benchmark: error %v, want one naming it", err)
	}
}

// TestReadmeTableIsCurrent: the README's "Measured" table is the one the
// committed bench.json renders, so a hand edit or a stale table fails.
func TestReadmeTableIsCurrent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	table, err := renderTable(rep.Benchmarks)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := replaceTable(string(readme), table)
	if err != nil {
		t.Fatal(err)
	}
	if want != string(readme) {
		t.Error("README.md's measured table is not the one bench.json renders; run `go run ./internal/benchreport readme bench.json README.md`")
	}
}

func TestFormatNumber(t *testing.T) {
	for _, tc := range []struct {
		x    float64
		want string
	}{
		{0, "0"}, {0.2762, "0.276"}, {0.0412, "0.0412"}, {3.3, "3.3"}, {25.35, "25.4"}, {356.2, "356"}, {73391, "73391"}, {-1.5, "-1.5"},
	} {
		if got := formatNumber(tc.x); got != tc.want {
			t.Errorf("formatNumber(%g) = %q, want %q", tc.x, got, tc.want)
		}
	}
}
