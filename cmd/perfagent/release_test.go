package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestReleaseTarball builds the release tarball of the host's
// architecture as make release does, checks its checksum and contents,
// unpacks it and runs the shipped binary on the shipped files.
func TestReleaseTarball(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the release binaries")
	}
	dist := t.TempDir()
	mk := exec.Command("make", "release", "ARCHS="+runtime.GOARCH, "DIST="+dist)
	mk.Dir = "../.."
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	version, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	name := "perfagent-" + strings.TrimSpace(string(version)) + ".linux-" + runtime.GOARCH
	tarball := filepath.Join(dist, name+".tar.gz")
	b, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	sums, err := os.ReadFile(filepath.Join(dist, "sha256sums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(sum[:]) + "  " + name + ".tar.gz\n"; string(sums) != want {
		t.Errorf("sha256sums.txt = %q, want %q", sums, want)
	}

	dir := t.TempDir()
	modes := untar(t, tarball, dir)
	for _, f := range []string{"perfagent", "llmsim"} {
		if modes[name+"/"+f]&0o111 == 0 {
			t.Errorf("%s is not executable in the tarball (mode %v)", f, modes[name+"/"+f])
		}
	}
	for _, f := range []string{"LICENSE", "README.md", "perfagent.yml", "perfagent-remote.yml", "rules/bottlenecks.yml",
		"profiles/vllm.yml", "profiles/sglang.yml", "profiles/tgi.yml", "dashboards/perfagent-fleet.json",
		"mixin/out/alerts.yaml", "examples/stack/prometheus.yml", "examples/demo/run.sh"} {
		if _, ok := modes[name+"/"+f]; !ok {
			t.Errorf("the tarball lacks %s", f)
		}
	}
	root := filepath.Join(dir, name)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(root, "perfagent"), args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("perfagent %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("--version"); !strings.Contains(out, "perfagent, version "+strings.TrimSpace(string(version))) || strings.Contains(out, "revision: unknown") {
		t.Errorf("perfagent --version does not carry the stamped version and revision:\n%s", out)
	}
	run("check", "config", "perfagent.yml", "perfagent-remote.yml")
	run("check", "rules", "rules/bottlenecks.yml")
	if promtool, err := exec.LookPath("promtool"); err == nil {
		// The stack's Prometheus finds the mixin's alerts in the tarball too.
		if out, err := exec.Command(promtool, "check", "config", filepath.Join(root, "examples/stack/prometheus.yml")).CombinedOutput(); err != nil {
			t.Errorf("promtool check config on the shipped stack: %v\n%s", err, out)
		}
	}
}

// untar unpacks a .tar.gz into dir and returns the mode of each entry.
func untar(t *testing.T, path, dir string) map[string]os.FileMode {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return modes
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if strings.Contains(name, "..") || h.Uid != 0 || h.Gid != 0 {
			t.Fatalf("tarball entry %s (uid %d, gid %d): want relative paths owned by root", h.Name, h.Uid, h.Gid)
		}
		modes[name] = h.FileInfo().Mode()
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, h.FileInfo().Mode())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			out.Close()
		}
	}
}
