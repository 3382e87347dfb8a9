package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfileInstructions reads a Dockerfile as instruction/argument pairs,
// continuation lines joined and comments dropped.
func dockerfileInstructions(t *testing.T, path string) [][2]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		out = append(out, [2]string{strings.ToUpper(instr), strings.TrimSpace(args)})
	}
	return out
}

// TestContainerImage checks the Dockerfile against what the image must be
// (an empty base, a non-root user, port 8002, a volume for the storage
// path, the binary as entrypoint, no HEALTHCHECK, sources make docker
// prepares), then, where podman can build images, builds it and checks the
// image: its configuration, and perfagent --version inside it, or, where
// containers cannot run, on the binary copied out of it.
func TestContainerImage(t *testing.T) {
	const root = "../.."
	var from []string
	var user, expose, volume, entrypoint, cmd string
	for _, in := range dockerfileInstructions(t, filepath.Join(root, "Dockerfile")) {
		switch in[0] {
		case "FROM":
			from = append(from, in[1])
		case "USER":
			user = in[1]
		case "EXPOSE":
			expose = in[1]
		case "VOLUME":
			volume = in[1]
		case "ENTRYPOINT":
			entrypoint = in[1]
		case "CMD":
			cmd = in[1]
		case "HEALTHCHECK":
			t.Error("the image must not have a HEALTHCHECK: Kubernetes probes /-/healthy and /-/ready")
		case "COPY":
			fields := strings.Fields(in[1])
			src := fields[len(fields)-2]
			if strings.HasPrefix(src, "--") {
				t.Fatalf("COPY %s: one source per COPY, please", in[1])
			}
			if !strings.HasPrefix(src, ".build/") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("COPY %s: %v", in[1], err)
				}
			}
		}
	}
	if !slices.Equal(from, []string{"scratch"}) {
		t.Errorf("FROM %v: the base must be scratch, which needs no registry", from)
	}
	if !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(user) {
		t.Errorf("USER %q: want a numeric non-root uid:gid (Kubernetes' runAsNonRoot refuses names)", user)
	}
	if expose != "8002" || volume != `["/perfagent"]` || entrypoint != `["/bin/perfagent"]` || !strings.Contains(cmd, "--storage.path=/perfagent") {
		t.Errorf("EXPOSE %s, VOLUME %s, ENTRYPOINT %s, CMD %s", expose, volume, entrypoint, cmd)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, prepared := range []string{".build/linux-$(IMAGE_ARCH)", ".build/storage", ".build/ca-certificates.crt"} {
		if !strings.Contains(string(mk), prepared) {
			t.Errorf("make docker does not prepare %s, which the Dockerfile copies", prepared)
		}
	}

	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Log("podman is not installed (apt-get install podman; .ci/run installs it): the image is checked statically only")
		return
	}
	if out, err := exec.Command(podman, "info").CombinedOutput(); err != nil {
		t.Logf("podman cannot run here (%v: %s): the image is checked statically only", err, lastLine(out))
		return
	}
	if testing.Short() {
		t.Skip("builds the image")
	}
	build := exec.Command("make", "docker", "CONTAINER="+podman)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make docker: %v\n%s", err, out)
	}
	version, _ := os.ReadFile(filepath.Join(root, "VERSION"))
	image := "perfagent:" + strings.TrimSpace(string(version))
	out, err := exec.Command(podman, "image", "inspect", image, "--format", "{{json .Config}}").Output()
	if err != nil {
		t.Fatalf("podman image inspect: %v", err)
	}
	var cfg struct {
		User         string
		ExposedPorts map[string]any
		Volumes      map[string]any
		Entrypoint   []string
		Healthcheck  any
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.User != "65534:65534" || cfg.ExposedPorts["8002/tcp"] == nil || cfg.Volumes["/perfagent"] == nil ||
		!slices.Equal(cfg.Entrypoint, []string{"/bin/perfagent"}) || cfg.Healthcheck != nil {
		t.Errorf("image configuration %s", out)
	}

	wantVersion := "perfagent, version " + strings.TrimSpace(string(version))
	run, err := exec.Command(podman, "run", "--rm", "--network=none", image, "--version").CombinedOutput()
	if err == nil {
		if !strings.Contains(string(run), wantVersion) {
			t.Errorf("perfagent --version in the image:\n%s", run)
		}
		return
	}
	t.Logf("podman cannot start containers here (%s); running the image's binary on the host instead", lastLine(run))
	created, err := exec.Command(podman, "create", image).Output()
	if err != nil {
		t.Fatalf("podman create: %v", err)
	}
	id := strings.TrimSpace(string(created))
	defer exec.Command(podman, "rm", id).Run()
	dir := t.TempDir()
	for _, f := range []string{"/bin/perfagent", "/etc/perfagent/perfagent.yml"} {
		if out, err := exec.Command(podman, "cp", id+":"+f, dir).CombinedOutput(); err != nil {
			t.Fatalf("podman cp %s: %v\n%s", f, err, out)
		}
	}
	if out, err := exec.Command(filepath.Join(dir, "perfagent"), "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), wantVersion) {
		t.Errorf("the image's perfagent --version: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(dir, "perfagent"), "check", "config", filepath.Join(dir, "perfagent.yml")).CombinedOutput(); err != nil {
		t.Errorf("the image's perfagent check config on its default configuration: %v\n%s", err, out)
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
