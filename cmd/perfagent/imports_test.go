package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/optiinfra/perfagent"

// allowedImports is the one-way dependency rule of the design: each
// package may import only these of ours (a package's own subpackages, such
// as collector/profiles, count as itself; each internal package is an
// area of its own).
var allowedImports = map[string][]string{
	"signals":              {},
	"config":               {"signals"},
	"signalstore":          {"internal/instantql", "internal/once"},
	"shard":                {},
	"alerting":             {"config"},
	"dashboards":           {},
	"mixin":                {},
	"collector":            {"config", "shard", "signalstore", "signals", "internal/once", "internal/promapi", "internal/scraper"},
	"rules":                {"config", "signalstore", "signals"},
	"recommender":          {"rules", "collector", "config", "signalstore", "signals"},
	"workflow":             {"collector", "shard", "signals"},
	"cost":                 {"recommender", "collector", "config", "signals"},
	"agent":                {"workflow", "cost", "recommender", "rules", "collector", "config", "signalstore", "signals"},
	"web":                  {"agent", "workflow", "cost", "recommender", "rules", "collector", "config", "shard", "signalstore", "signals", "internal/gziphttp"},
	"simulator":            {},
	"internal/benchreport": {},
	"internal/gziphttp":    {},
	"internal/instantql":   {},
	"internal/once":        {},
	"internal/promapi":     {},
	"internal/scraper":     {},
	"internal/testutil":    {},
}

// testOnly are packages of ours that any package's tests may import and
// no package's code may: shared test helpers, which import nothing of
// ours.
var testOnly = []string{"internal/testutil"}

// area maps a package path to the rule that governs it.
func area(pkg string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, rest, _ := strings.Cut(rel, "/")
	if top == "internal" {
		sub, _, _ := strings.Cut(rest, "/")
		return top + "/" + sub
	}
	return top
}

func TestImportDirection(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}`, module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	// used records the allowed edges some package's code or tests take, so
	// that an allowance nothing needs is reported and the rule stays tight.
	used := map[[2]string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "|")
		pkg, imports, testImports := fields[0], strings.Fields(fields[1]), strings.Fields(fields[2])
		from := area(pkg)
		for _, imp := range imports {
			if to := area(imp); strings.HasPrefix(imp, module+"/") && to != from && slices.Contains(testOnly, to) {
				t.Errorf("%s imports %s, which only tests may import", pkg, imp)
			}
		}
		if from == "cmd" {
			continue
		}
		allowed, ok := allowedImports[from]
		if !ok {
			t.Errorf("package %s is in no area of the dependency rule; add it to allowedImports", pkg)
			continue
		}
		checked++
		for i, imp := range append(imports, testImports...) {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := area(imp)
			used[[2]string{from, to}] = true
			if to == from || slices.Contains(allowed, to) || (i >= len(imports) && slices.Contains(testOnly, to)) {
				continue
			}
			t.Errorf("%s imports %s: %s may import only %v of ours", pkg, imp, from, allowed)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no package checked")
	}
	for from, allowed := range allowedImports {
		for _, to := range allowed {
			if !used[[2]string{from, to}] {
				t.Errorf("allowedImports lets %s import %s, which none of its code or tests does; remove the allowance", from, to)
			}
		}
	}
}
