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
// as collector/profiles, count as itself).
var allowedImports = map[string][]string{
	"collector":   {},
	"rules":       {"collector"},
	"recommender": {"rules", "collector"},
	"workflow":    {"recommender", "collector"},
	"agent":       {"workflow", "recommender", "rules", "collector"},
	"web":         {"web", "agent", "workflow", "recommender", "rules", "collector"},
	"simulator":   {},
	"internal":    {},
}

// area maps a package path to the rule that governs it.
func area(pkg string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	return top
}

func TestImportDirection(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg, imports := fields[0], fields[1:]
		from := area(pkg)
		if from == "cmd" {
			continue
		}
		allowed, ok := allowedImports[from]
		if !ok {
			t.Errorf("package %s is in no area of the dependency rule; add it to allowedImports", pkg)
			continue
		}
		checked++
		for _, imp := range imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := area(imp)
			if to == from || slices.Contains(allowed, to) {
				continue
			}
			t.Errorf("%s imports %s: %s may import only %v of ours", pkg, imp, from, allowed)
		}
	}
	if checked == 0 {
		t.Fatal("no package checked")
	}
}
