package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// upstreamTestImporters are the packages outside this module that the
// binaries link and that import testing or testify in files that are not
// tests. None of their test helpers is called; the imports come along
// with the package.
var upstreamTestImporters = map[string]string{
	"github.com/prometheus/prometheus/tsdb":          "tsdb/testutil.go is part of the package",
	"github.com/prometheus/prometheus/tsdb/tsdbutil": "imported by tsdb for its directory lock",
	"github.com/prometheus/prometheus/util/testutil": "imported by tsdbutil",
	"github.com/pandatix/go-abnf":                    "its fuzz helpers; expfmt parses OpenMetrics with it",
}

// isTestPackage reports whether pkg is test code: the testing package,
// testify, or Prometheus' test storage and PromQL test loader.
func isTestPackage(pkg string) bool {
	return pkg == "testing" ||
		strings.HasPrefix(pkg, "github.com/stretchr/testify/") ||
		strings.HasSuffix(pkg, "/promqltest") ||
		strings.HasSuffix(pkg, "/teststorage")
}

// TestBinariesLinkNoTestCode keeps test code out of the binaries: no
// package of ours, and no package outside this module but the known ones
// above, may import test packages, and the PromQL test loader and test
// storage, which exist only for tests, may not be linked at all.
func TestBinariesLinkNoTestCode(t *testing.T) {
	for _, bin := range []string{"./cmd/perfagent", "./cmd/llmsim", "./cmd/accuracy"} {
		t.Run(bin, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, bin)
			cmd.Dir = "../.."
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", bin, err)
			}
			deps := 0
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				pkg, imports := fields[0], fields[1:]
				deps++
				if strings.HasSuffix(pkg, "/promqltest") || strings.HasSuffix(pkg, "/teststorage") {
					t.Errorf("%s links %s", bin, pkg)
				}
				if isTestPackage(pkg) {
					continue
				}
				for _, imp := range imports {
					if !isTestPackage(imp) {
						continue
					}
					if _, ok := upstreamTestImporters[pkg]; ok {
						continue
					}
					t.Errorf("%s links %s, which imports %s", bin, pkg, imp)
				}
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if deps == 0 {
				t.Fatalf("go list -deps %s listed nothing", bin)
			}
		})
	}
}
