package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// amAlert is an alert as Alertmanager's v2 API lists it.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL"`
}

func alertmanagerAlerts(t *testing.T, amURL, alertname string) []amAlert {
	t.Helper()
	code, body := get(t, amURL+"/api/v2/alerts?filter="+url.QueryEscape(fmt.Sprintf("alertname=%q", alertname)))
	if code != http.StatusOK {
		t.Fatalf("Alertmanager's alerts = %d %s", code, body)
	}
	var as []amAlert
	if err := json.Unmarshal([]byte(body), &as); err != nil {
		t.Fatalf("Alertmanager's alerts: %v: %s", err, body)
	}
	return as
}

// TestBottleneckAlertsReachAlertmanager runs a simulated server, the agent
// and Debian's Alertmanager: a TTFT over its SLO fires as a bottleneck,
// which Alertmanager lists with the rule's labels and annotations and a
// link to the instance's page; raising the SLO target clears it, and
// Alertmanager sends it as resolved.
func TestBottleneckAlertsReachAlertmanager(t *testing.T) {
	recv := &testutil.WebhookRecorder{}
	hook := httptest.NewServer(recv)
	defer hook.Close()
	amURL := testutil.StartAlertmanager(t, hook.URL, nil)
	sim := startSimFleet(t, "secret", 1)

	dir := t.TempDir()
	ruleFile := filepath.Join(dir, "slo.yml")
	if err := os.WriteFile(ruleFile, []byte(`groups:
  - name: slo
    rules:
      - alert: TTFTOverSLO
        expr: llm_time_to_first_token_seconds{quantile="0.95"} > scalar(perfagent_slo_ttft_p95_seconds{model=""})
        labels: {bottleneck: B4, category: latency, severity: warning}
        annotations:
          summary: TTFT p95 of {{ $labels.instance }} is over its SLO
          description: TTFT p95 is {{ $value }}s.
          runbook_url: https://example.invalid/runbook
          recommend: raise_max_num_batched_tokens
`), 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(slo string) string {
		return fmt.Sprintf(`global: {scrape_interval: 250ms, scrape_timeout: 200ms, evaluation_interval: 250ms}
collector: {rate_window: 8s, probe: {enabled: false}}
source: {targets: [{url: "http://%s/metrics"}]}
rules:
  rule_files: [%s]
  slo: [{model: "", ttft_p95: %s}]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
workflow: {external_url: "http://agent.example:8002"}
`, sim.addrs[0], ruleFile, slo, strings.TrimPrefix(amURL, "http://"))
	}
	a := startAgent(t, config("1ms"), withLifecycle)

	var fired []amAlert
	waitFor(t, "the bottleneck listed by Alertmanager", func() bool {
		fired = alertmanagerAlerts(t, amURL, "TTFTOverSLO")
		return len(fired) == 1
	})
	al := fired[0]
	want := map[string]string{
		"alertname": "TTFTOverSLO", "bottleneck": "B4", "category": "latency", "severity": "warning",
		"instance": sim.addrs[0], "engine": "vllm",
	}
	for k, v := range want {
		if al.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, al.Labels[k], v, al.Labels)
		}
	}
	if al.Labels["model"] == "" {
		t.Errorf("no model label: %v", al.Labels)
	}
	if !strings.HasPrefix(al.Annotations["summary"], "TTFT p95 of "+sim.addrs[0]) || al.Annotations["runbook_url"] != "https://example.invalid/runbook" ||
		al.Annotations["recommend"] != "raise_max_num_batched_tokens" || al.Annotations["description"] == "" {
		t.Errorf("annotations %v", al.Annotations)
	}
	if al.GeneratorURL != "http://agent.example:8002/instances/"+sim.addrs[0] {
		t.Errorf("generatorURL %q, want the instance's page", al.GeneratorURL)
	}
	// The link leads to the UI's instance page (TestUIInBrowser drives it),
	// which shows what the API says of the instance.
	if code, page := get(t, a.url+"/instances/"+sim.addrs[0]); code != http.StatusOK || !strings.Contains(page, `<main id="main"`) {
		t.Errorf("the instance page = %d", code)
	}
	// The first evaluations run on a rate window that holds a few requests,
	// so the quantile may flap once before it settles over the target.
	waitFor(t, "the API listing the bottleneck for the instance page", func() bool {
		_, bs := get(t, a.url+"/api/v1/bottlenecks?instance="+sim.addrs[0])
		return strings.Contains(bs, `"rule":"TTFTOverSLO"`)
	})
	if _, health := get(t, a.url+"/api/v1/health"); !strings.Contains(health, `"alertmanagers":["`+amURL+`/api/v2/alerts"]`) {
		t.Errorf("/api/v1/health does not list the Alertmanager: %s", health)
	}
	_, metrics := get(t, a.url+"/metrics")
	if !strings.Contains(metrics, `perfagent_notifications_sent_total{alertmanager="`+amURL+`/api/v2/alerts"}`) {
		t.Errorf("/metrics lacks perfagent_notifications_sent_total for %s", amURL)
	}

	// The SLO is met once its target is an hour.
	if err := os.WriteFile(a.config, []byte(config("1h")), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, a.url+"/-/reload", ""); code != http.StatusOK {
		t.Fatalf("reload = %d %s", code, body)
	}
	waitFor(t, "the resolved notification", func() bool {
		for _, m := range recv.Messages() {
			for _, al := range m.Alerts {
				if al.Labels["alertname"] == "TTFTOverSLO" && al.Status == "resolved" {
					return true
				}
			}
		}
		return false
	})
	if left := alertmanagerAlerts(t, amURL, "TTFTOverSLO"); len(left) != 0 {
		t.Errorf("Alertmanager still lists %d active alerts", len(left))
	}
}
