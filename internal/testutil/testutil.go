package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.yaml.in/yaml/v3"
)

// FreeAddr is a loopback host:port that nothing listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Exposition gathers g and writes it in the Prometheus text format.
func Exposition(t testing.TB, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// PromtoolCheckMetrics runs promtool check metrics on an exposition and
// fails on any error or lint finding. The prometheus_* families of the
// upstream libraries (TSDB, scrape, rule groups: Prometheus exposes the
// same, names promtool's lint dislikes included) are left out. Without
// promtool (Debian's prometheus package, which CI installs) it logs that
// and checks nothing, leaving the rest of the test to run.
func PromtoolCheckMetrics(t testing.TB, exposition string) {
	t.Helper()
	exposition = withoutUpstreamFamilies(exposition)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian package prometheus; .ci/run installs it): promtool check metrics skipped")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// AlertmanagerMessage is the part of Alertmanager's webhook payload
// (version 4) that tests read.
type AlertmanagerMessage struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Alerts  []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

// WebhookRecorder is an Alertmanager webhook receiver that keeps every
// message.
type WebhookRecorder struct {
	mu       sync.Mutex
	messages []AlertmanagerMessage
}

// ServeHTTP records one message.
func (r *WebhookRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var m AlertmanagerMessage
	if err := json.NewDecoder(req.Body).Decode(&m); err == nil {
		r.mu.Lock()
		r.messages = append(r.messages, m)
		r.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// Messages are the messages received so far.
func (r *WebhookRecorder) Messages() []AlertmanagerMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]AlertmanagerMessage(nil), r.messages...)
}

// StartAlertmanager runs Debian's Alertmanager on loopback, sending every
// group (grouped by groupBy; nil groups by all labels) to the webhook at
// hookURL at once, and returns its URL once it is ready. Without the
// package (which CI installs) the test is skipped.
func StartAlertmanager(t testing.TB, hookURL string, groupBy []string) string {
	t.Helper()
	return RunAlertmanager(t, hookURL, groupBy).URL
}

// RunAlertmanager is StartAlertmanager, returning the process so that a
// test can stop it and start it again on the same address and storage.
func RunAlertmanager(t testing.TB, hookURL string, groupBy []string) *Daemon {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Skip("Debian's prometheus-alertmanager is not installed; .ci/run installs it")
	}
	group := "['...']"
	if groupBy != nil {
		group = "[" + strings.Join(groupBy, ", ") + "]"
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: %s
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
    send_resolved: true
`, group, hookURL)
	if err := os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	return startDaemon(t, "Alertmanager", addr, bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
}

// withoutUpstreamFamilies drops the lines of prometheus_* families, and of
// the notifier's families that perfagent exports under its own prefix
// with their upstream names (perfagent_notifications_*).

func withoutUpstreamFamilies(exposition string) string {
	var b strings.Builder
	for line := range strings.Lines(exposition) {
		name := line
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				name = f[1]
			}
		}
		if strings.HasPrefix(name, "prometheus_") || strings.HasPrefix(name, "perfagent_notifications_") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// StartPrometheus runs Debian's prometheus on loopback with the given
// configuration and returns its URL once it is ready; the process stops
// with the test, and its output is logged if the test failed. Without the
// package (which CI installs) the test is skipped.
func StartPrometheus(t testing.TB, config string) string {
	t.Helper()
	return RunPrometheus(t, config).URL
}

// RunPrometheus is StartPrometheus, returning the process so that a test
// can stop it and start it again on the same address and storage.
func RunPrometheus(t testing.TB, config string) *Daemon {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("Debian's prometheus is not installed (apt-get install prometheus); .ci/run installs it")
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	return startDaemon(t, "Prometheus", addr, bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
}

// StartVictoriaMetrics runs Debian's single-node VictoriaMetrics on
// loopback, scraping as the given Prometheus scrape configuration says,
// and returns its URL once it is ready; the process stops with the test.
// Queries see samples as soon as they are ingested (VictoriaMetrics hides
// the last 30 s by default). Without the package the test is skipped.
func StartVictoriaMetrics(t testing.TB, scrapeConfig string) string {
	t.Helper()
	bin, err := exec.LookPath("victoria-metrics")
	if err != nil {
		t.Skip("Debian's victoria-metrics is not installed (apt-get install victoria-metrics); .ci/run installs it")
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "scrape.yml")
	if err := os.WriteFile(cfgFile, []byte(scrapeConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	return startDaemon(t, "VictoriaMetrics", addr, bin, "-httpListenAddr="+addr, "-storageDataPath="+filepath.Join(dir, "data"),
		"-promscrape.config="+cfgFile, "-search.latencyOffset=0s", "-loggerLevel=WARN").URL
}

// Daemon is a server process of a test (Prometheus, Alertmanager,
// VictoriaMetrics) that listens on URL. It is killed when the test ends,
// and its output is logged if the test failed.
type Daemon struct {
	// URL is http://host:port of the daemon.
	URL string

	t    testing.TB
	what string
	bin  string
	args []string
	out  *SyncBuffer
	cmd  *exec.Cmd
}

func startDaemon(t testing.TB, what, addr, bin string, args ...string) *Daemon {
	t.Helper()
	d := &Daemon{URL: "http://" + addr, t: t, what: what, bin: bin, args: args, out: &SyncBuffer{}}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", what, d.out.String())
		}
	})
	d.Start()
	return d
}

// Start starts the daemon again after Stop, on the same address and
// storage, and waits until it is ready.
func (d *Daemon) Start() {
	d.t.Helper()
	cmd := exec.Command(d.bin, d.args...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("starting %s: %v", d.what, err)
	}
	d.cmd = cmd
	waitReady(d.t, d.what, d.URL)
}

// Stop kills the daemon, as a crash or a lost machine would, and waits
// until it has exited.
func (d *Daemon) Stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	d.cmd = nil
}

// waitReady polls url/-/ready for 20 seconds.
func waitReady(t testing.TB, what, url string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
	}
	t.Fatalf("%s was not ready within 20s", what)
}

// SyncBuffer collects output written from several goroutines, such as a
// process's or a logger's.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Golden compares generated files with the committed ones under dir, or,
// with update, writes them there. how says how to regenerate them ("run
// make dashboards"). A committed file matching pattern (relative to dir)
// that is no longer generated is an error too.
func Golden(t testing.TB, dir string, files map[string][]byte, pattern string, update bool, how string) {
	t.Helper()
	committed, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, f := range committed {
		rel, _ := filepath.Rel(dir, f)
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			t.Errorf("%s is no longer generated; remove it", f)
		}
	}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v; %s", err, how)
			continue
		}
		if !bytes.Equal(want, b) {
			t.Errorf("%s differs from what is generated; %s and commit the result", path, how)
		}
	}
}

// Seeds adds the content of every file the patterns match to a fuzz
// target's corpus, and fails when they match none.
func Seeds(f *testing.F, patterns ...string) {
	f.Helper()
	n := 0
	for _, pattern := range patterns {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seed files match %v", patterns)
	}
}

// ReadYAML decodes the YAML file at path into v.
func ReadYAML(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
