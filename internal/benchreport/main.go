// Command benchreport turns `go test -bench` output (standard input) into
// the JSON report that `make bench` writes: every result with its metrics,
// and its time per operation as a ratio to the first case of its family
// measured in the same run, since absolute times on shared machines mean
// little. `benchreport readme bench.json README.md` writes the README's
// "Measured" table from the report.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Result is one benchmark line.
type Result struct {
	Package    string             `json:"package"`
	Name       string             `json:"name"`
	Iterations int64              `json:"iterations"`
	Metrics    map[string]float64 `json:"metrics"`
	// Baseline is the first case of the same family in this run, and
	// RatioToBaseline its ns/op divided into this one's.
	Baseline        string  `json:"baseline"`
	RatioToBaseline float64 `json:"ratio_to_baseline"`
}

// report is the JSON document benchreport writes.
type report struct {
	Benchmarks []Result `json:"benchmarks"`
}

// usage is how to run benchreport.
const usage = `usage: benchreport < bench.txt > bench.json
       benchreport readme bench.json README.md`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 0:
		results, err := parse(os.Stdin)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report{Benchmarks: results})
	case len(args) == 3 && args[0] == "readme":
		return updateReadme(args[1], args[2])
	}
	return fmt.Errorf("unexpected arguments %q\n%s", args, usage)
}

func parse(r io.Reader) ([]Result, error) {
	var (
		out      []Result
		pkg      string
		baseline = map[string]int{}
	)
	sc := bufio.NewScanner(r)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: iterations %q: %w", lineNo, f[1], err)
		}
		res := Result{Package: pkg, Name: trimProcs(f[0]), Iterations: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: value %q: %w", lineNo, f[i], err)
			}
			res.Metrics[f[i+1]] = v
		}
		family := pkg + " " + res.Name
		if i := strings.LastIndexByte(res.Name, '/'); i >= 0 {
			family = pkg + " " + res.Name[:i]
		}
		if _, ok := baseline[family]; !ok {
			baseline[family] = len(out)
		}
		out = append(out, res)
		cur, base := &out[len(out)-1], out[baseline[family]]
		cur.Baseline = base.Name
		if b := base.Metrics["ns/op"]; b > 0 {
			cur.RatioToBaseline = cur.Metrics["ns/op"] / b
		}
	}
	return out, sc.Err()
}

// trimProcs drops the -GOMAXPROCS suffix go test appends.
func trimProcs(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i]
		}
	}
	return name
}
