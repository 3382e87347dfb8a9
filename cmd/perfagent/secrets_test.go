package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSecretsAreNeverShown writes a password in every place a user can
// write one and checks that none of them appears in the API's answers (of
// every GET route its OpenAPI description lists), on the pages, in
// /metrics, in the log, or in the errors of a configuration that is
// refused.
func TestSecretsAreNeverShown(t *testing.T) {
	secrets := map[string]string{
		"source URL":          "pw-source-url",
		"source basic_auth":   "hunter2", // the password fakePrometheus wants
		"Alertmanager URL":    "pw-alertmanager",
		"webhook URL":         "pw-webhook-url",
		"webhook secret":      "pw-webhook-secret",
		"source bearer token": "pw-bearer",
		"target URL":          "pw-target",
	}
	prom := fakePrometheus(t, new(atomic.Bool))
	hook := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(hook.Close)
	am := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(am.Close)
	withUser := func(raw, user, pw string) string {
		return strings.Replace(raw, "://", "://"+user+":"+pw+"@", 1)
	}
	cfg := fmt.Sprintf(`global: {evaluation_interval: 250ms}
source:
  prometheus:
    url: %s
    basic_auth: {username: agent, password: %s}
    retries: 0
collector: {probe: {enabled: false}}
workflow:
  approvers: [bob]
  alertmanagers: [%s]
  webhook: {url: %s, secret: %s}
`, prom.URL, secrets["source basic_auth"],
		withUser(am.URL, "a", secrets["Alertmanager URL"]), withUser(hook.URL+"/", "w", secrets["webhook URL"]), secrets["webhook secret"])
	a := startAgent(t, cfg)
	waitReady(t, a)

	var seen bytes.Buffer
	for _, path := range []string{"/api/v1/config", "/api/v1/health", "/api/v1/instances", "/api/v1/rules", "/api/v1/signals", "/metrics", "/"} {
		code, body := get(t, a.url+path)
		if code != http.StatusOK {
			t.Errorf("GET %s = %d", path, code)
		}
		fmt.Fprintf(&seen, "GET %s:\n%s\n", path, body)
	}
	// Every other GET route of the API, as its OpenAPI description lists
	// them, and the pages.
	_, doc := get(t, a.url+"/api/v1/openapi.json")
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(doc), &spec); err != nil || len(spec.Paths) == 0 {
		t.Fatalf("openapi.json: %v", err)
	}
	var inst struct {
		Data struct{ Instances []struct{ Instance string } }
	}
	if _, body := get(t, a.url+"/api/v1/instances"); json.Unmarshal([]byte(body), &inst) != nil || len(inst.Data.Instances) == 0 {
		t.Fatalf("no instance: %s", body)
	}
	paths := []string{"/api/v1/openapi.json", "/api/v1/openapi.yaml", "/docs", "/redoc", "/-/healthy", "/-/ready", "/instances/" + inst.Data.Instances[0].Instance, "/workflows"}
	for path, ops := range spec.Paths {
		if _, ok := ops["get"]; ok {
			paths = append(paths, "/api/v1"+strings.NewReplacer("{instance}", inst.Data.Instances[0].Instance, "{id}", "wf-none").Replace(path))
		}
	}
	for _, path := range paths {
		code, body := get(t, a.url+path)
		if code != http.StatusOK && !(code == http.StatusNotFound && strings.Contains(path, "wf-none")) {
			t.Errorf("GET %s = %d", path, code)
		}
		fmt.Fprintf(&seen, "GET %s:\n%s\n", path, body)
	}
	if n := len(paths); n < 15 {
		t.Errorf("only %d more routes and pages read", n)
	}
	if _, config := get(t, a.url+"/api/v1/config"); !strings.Contains(config, "xxxxx") || !strings.Contains(config, "<secret>") {
		t.Errorf("GET /api/v1/config hides nothing:\n%s", config)
	}

	// Credentials in the source's URL, a bearer token given twice, and
	// credentials in an embedded target's URL are refused, and the errors
	// say so without the secrets.
	dir := t.TempDir()
	for name, body := range map[string]string{
		"source.yml": fmt.Sprintf("source:\n  prometheus:\n    url: %s\n", withUser(prom.URL, "p", secrets["source URL"])),
		"bearer.yml": fmt.Sprintf("source:\n  prometheus:\n    url: %s\n    authorization: {credentials: %s, credentials_file: /nonexistent}\n", prom.URL, secrets["source bearer token"]),
		"target.yml": fmt.Sprintf("source:\n  targets:\n    - url: http://t:%s@127.0.0.1:1/metrics\n", secrets["target URL"]),
	} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := checkConfig([]string{file}, &stdout, &stderr); code == exitSuccess {
			t.Errorf("check config %s passed", name)
		}
		fmt.Fprintf(&seen, "check config %s:\n%s%s\n", name, stdout.String(), stderr.String())
		refused := startAgent(t, body)
		if code := refused.stop(); code == exitSuccess {
			t.Errorf("the agent started with %s", name)
		}
		fmt.Fprintf(&seen, "agent log with %s:\n%s\n", name, refused.stderr.String())
	}
	if n := strings.Count(seen.String(), "carries credentials"); n < 4 {
		t.Errorf("the URLs with credentials were refused for them %d times, want 4 (check config and start, source and target):\n%s", n, seen.String())
	}

	fmt.Fprintf(&seen, "agent log:\n%s\n", a.stderr.String())
	for where, s := range secrets {
		if strings.Contains(seen.String(), s) {
			t.Errorf("the %s password %q is shown:\n%s", where, s, seen.String())
		}
	}
}
