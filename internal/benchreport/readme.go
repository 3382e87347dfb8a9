package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"text/template"
)

// measuredTemplate renders the README's "Measured" table from a report, so
// that every figure the README quotes is the last `make bench`'s.
//
//go:embed measured.tmpl
var measuredTemplate string

// The lines around the table in the README.
const (
	tableBegin = "<!-- The table below is written by `make bench` from bench.json (internal/benchreport/measured.tmpl): do not edit it by hand. -->"
	tableEnd   = "<!-- End of the table written by `make bench`. -->"
)

// renderTable renders the measured table from results. A figure the
// template asks for and the report lacks is an error naming it.
func renderTable(results []Result) (string, error) {
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Name] = r
	}
	result := func(name string) (Result, error) {
		r, ok := byName[name]
		if !ok {
			return Result{}, fmt.Errorf("the report has no benchmark %s", name)
		}
		return r, nil
	}
	metric := func(name, unit string) (float64, error) {
		r, err := result(name)
		if err != nil {
			return 0, err
		}
		v, ok := r.Metrics[unit]
		if !ok {
			return 0, fmt.Errorf("benchmark %s reports no %s", name, unit)
		}
		return v, nil
	}
	tmpl, err := template.New("measured.tmpl").Option("missingkey=error").Funcs(template.FuncMap{
		"m": metric,
		"ratio": func(name string) (float64, error) {
			r, err := result(name)
			return r.RatioToBaseline, err
		},
		"sum": func(unit string, names ...string) (float64, error) {
			total := 0.0
			for _, name := range names {
				v, err := metric(name, unit)
				if err != nil {
					return 0, err
				}
				total += v
			}
			return total, nil
		},
		"div":     func(a, b float64) float64 { return a / b },
		"n":       formatNumber,
		"seconds": formatNanoseconds,
	}).Parse(measuredTemplate)
	if err != nil {
		return "", fmt.Errorf("parsing the table's template: %w", err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, nil); err != nil {
		return "", fmt.Errorf("rendering the table: %w", err)
	}
	return b.String(), nil
}

// formatNumber writes x with three significant digits, or as a whole
// number from 100 on.
func formatNumber(x float64) string {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	digits := max(0, 2-int(math.Floor(math.Log10(math.Abs(x)))))
	s := strconv.FormatFloat(x, 'f', digits, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// formatNanoseconds writes a time per operation in ms below a second, in s
// from one.
func formatNanoseconds(ns float64) string {
	if s := ns / 1e9; s >= 1 {
		return formatNumber(s) + " s"
	}
	return formatNumber(ns/1e6) + " ms"
}

// replaceTable puts table between the README's marker lines.
func replaceTable(readme, table string) (string, error) {
	begin := strings.Index(readme, tableBegin+"\n")
	end := strings.Index(readme, tableEnd)
	if begin < 0 || end < begin {
		return "", fmt.Errorf("the README lacks the table's marker lines %q and %q", tableBegin, tableEnd)
	}
	begin += len(tableBegin) + 1
	return readme[:begin] + table + readme[end:], nil
}

// updateReadme renders the report at reportPath into the README at
// readmePath.
func updateReadme(reportPath, readmePath string) error {
	data, err := os.ReadFile(reportPath)
	if err != nil {
		return fmt.Errorf("reading the report: %w", err)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("reading the report %s: %w", reportPath, err)
	}
	table, err := renderTable(rep.Benchmarks)
	if err != nil {
		return fmt.Errorf("%s: %w", reportPath, err)
	}
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return fmt.Errorf("reading the README: %w", err)
	}
	out, err := replaceTable(string(readme), table)
	if err != nil {
		return fmt.Errorf("%s: %w", readmePath, err)
	}
	return os.WriteFile(readmePath, []byte(out), 0o644)
}
