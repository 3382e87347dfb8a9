package alerting

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/internal/testutil"
)

type post struct {
	path, auth string
	alerts     []struct {
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		GeneratorURL string            `json:"generatorURL"`
	}
}

// fakeAlertmanager records alert posts and answers with status.
type fakeAlertmanager struct {
	mu     sync.Mutex
	posts  []post
	status int
}

func (f *fakeAlertmanager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	user, pw, _ := r.BasicAuth()
	p := post{path: r.Method + " " + r.URL.Path, auth: user + ":" + pw}
	if err := json.Unmarshal(b, &p.alerts); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.posts = append(f.posts, p)
	if f.status != 0 {
		w.WriteHeader(f.status)
	}
}

func (f *fakeAlertmanager) received() []post {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]post(nil), f.posts...)
}

func load(t *testing.T, yml string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte("source: {targets: [{url: 'http://127.0.0.1:8000/metrics'}]}\n"+yml), "perfagent.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func hostOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10s", what)
}

func TestNotifierDeliversAsConfigured(t *testing.T) {
	good, down := &fakeAlertmanager{}, &fakeAlertmanager{status: http.StatusInternalServerError}
	goodSrv, downSrv := httptest.NewServer(good), httptest.NewServer(down)
	defer goodSrv.Close()
	defer downSrv.Close()
	cfg := load(t, fmt.Sprintf(`
alerting:
  alert_relabel_configs:
    - {action: labeldrop, regex: internal}
  alertmanagers:
    - static_configs: [{targets: [%q]}]
      path_prefix: /am
      basic_auth: {username: perfagent, password: s3cret}
    - static_configs: [{targets: [%q]}]
`, hostOf(t, goodSrv.URL), hostOf(t, downSrv.URL)))

	n := New(Options{})
	commit, err := n.PrepareConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	commit()
	done := make(chan struct{})
	go func() {
		n.Run()
		close(done)
	}()
	eventually(t, "two Alertmanagers discovered", func() bool { return len(n.Alertmanagers()) == 2 })

	n.Send(&notifier.Alert{
		Labels:       labels.FromStrings("alertname", "LLMKVCachePressure", "instance", "a:8000", "internal", "x"),
		Annotations:  labels.FromStrings("summary", "KV cache full"),
		StartsAt:     time.Now(),
		GeneratorURL: "http://agent:8002/instances/a:8000",
	})
	eventually(t, "delivery to the healthy Alertmanager", func() bool { return len(good.received()) == 1 })
	eventually(t, "a try at the failing Alertmanager", func() bool { return len(down.received()) == 1 })
	p := good.received()[0]
	if p.path != "POST /am/api/v2/alerts" || p.auth != "perfagent:s3cret" {
		t.Errorf("request %s with auth %s", p.path, p.auth)
	}
	if a := p.alerts[0]; a.Labels["alertname"] != "LLMKVCachePressure" || a.Labels["internal"] != "" ||
		a.Annotations["summary"] != "KV cache full" || a.GeneratorURL != "http://agent:8002/instances/a:8000" {
		t.Errorf("posted %+v", a)
	}

	goodURL, downURL := goodSrv.URL+"/am/api/v2/alerts", downSrv.URL+"/api/v2/alerts"
	eventually(t, "the failure counted", func() bool {
		exp := testutil.Exposition(t, n.Gatherer())
		return strings.Contains(exp, fmt.Sprintf("perfagent_notifications_errors_total{alertmanager=%q} 1", downURL)) &&
			strings.Contains(exp, fmt.Sprintf("perfagent_notifications_dropped_total{alertmanager=%q} 1", downURL))
	})
	exp := testutil.Exposition(t, n.Gatherer())
	for _, want := range []string{
		fmt.Sprintf("perfagent_notifications_sent_total{alertmanager=%q} 1", goodURL),
		fmt.Sprintf("perfagent_notifications_errors_total{alertmanager=%q} 0", goodURL),
		fmt.Sprintf("perfagent_notifications_queue_length{alertmanager=%q} 0", goodURL),
		fmt.Sprintf("perfagent_notifications_dropped_total{alertmanager=%q} 0", goodURL),
		"perfagent_notifications_queue_capacity 10000",
		"perfagent_notifications_alertmanagers_discovered 2",
	} {
		if !strings.Contains(exp, want) {
			t.Errorf("metrics lack %q:\n%s", want, exp)
		}
	}
	if strings.Contains(exp, "prometheus_notifications") {
		t.Error("the notifier's metrics keep their upstream names")
	}
	testutil.PromtoolCheckMetrics(t, exp)

	// A reload without the failing Alertmanager stops sending to it.
	commit, err = n.PrepareConfig(load(t, fmt.Sprintf("alerting: {alertmanagers: [{static_configs: [{targets: [%q]}], path_prefix: /am, basic_auth: {username: perfagent, password: s3cret}}]}", hostOf(t, goodSrv.URL))))
	if err != nil {
		t.Fatal(err)
	}
	commit()
	eventually(t, "one Alertmanager after the reload", func() bool { return len(n.Alertmanagers()) == 1 })

	n.Stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
}

func TestPrepareConfigRefusesUnusableClients(t *testing.T) {
	cfg := load(t, "alerting: {alertmanagers: [{static_configs: [{targets: ['127.0.0.1:9093']}], tls_config: {ca_file: /nonexistent/ca.pem}}]}")
	n := New(Options{})
	if _, err := n.PrepareConfig(cfg); err == nil || !strings.Contains(err.Error(), "alerting.alertmanagers[0]") {
		t.Fatalf("err = %v, want one naming alerting.alertmanagers[0]", err)
	}
}
