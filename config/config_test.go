package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadMinimal(t *testing.T) {
	tests := []struct {
		name, yaml, mode string
	}{
		{"remote", "source: {prometheus: {url: http://127.0.0.1:9090}}\n", "remote"},
		{"embedded", "source: {targets: [{url: http://127.0.0.1:8000/metrics}]}\n", "embedded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load([]byte(tc.yaml), "p.yml")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Mode() != tc.mode {
				t.Errorf("mode = %s, want %s", cfg.Mode(), tc.mode)
			}
			if cfg.Global.ScrapeInterval != Duration(15*time.Second) || cfg.Global.EvaluationInterval != Duration(15*time.Second) {
				t.Errorf("clocks = %+v, want 15s defaults", cfg.Global)
			}
			if cfg.Collector.RateWindow != Duration(time.Minute) || !cfg.Collector.Probe.Enabled {
				t.Errorf("collector defaults = %+v", cfg.Collector)
			}
			if p := cfg.Source.Prometheus; p != nil && (p.Retries != 3 || p.Backfill != Duration(15*time.Minute) || !p.HTTPClientConfig.FollowRedirects) {
				t.Errorf("remote defaults = %+v", p)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"no source", "global: {scrape_interval: 10s}\n", []string{"p.yml:1: field source: no data source: set source.prometheus.url"}},
		{"empty file", "", []string{"field source: no data source"}},
		{"unknown top-level field", "source: {targets: [{url: http://a:1}]}\nsauce: 1\n", []string{`p.yml:2: field sauce: unknown field "sauce"`}},
		{"unknown nested field", "source:\n  prometheus:\n    url: http://a:9090\n    timeout: 5s\n", []string{`p.yml:4: field source.prometheus.timeout: unknown field "timeout"`}},
		{"bad duration", "global:\n  scrape_interval: 10 seconds\nsource: {targets: [{url: http://a:1}]}\n", []string{`p.yml:2: field global.scrape_interval: "10 seconds" is not a duration`}},
		{"zero interval", "global:\n  evaluation_interval: 0s\nsource: {targets: [{url: http://a:1}]}\n", []string{"p.yml:2: field global.evaluation_interval: must be greater than zero"}},
		{"both sources", "source:\n  prometheus: {url: http://a:9090}\n  targets: [{url: http://b:1}]\n", []string{"p.yml:1: field source: set either source.prometheus or source.targets, not both"}},
		{"bad target url", "source:\n  targets:\n    - url: http://a:1/metrics\n    - url: ftp://b/metrics\n", []string{`p.yml:4: field source.targets[1].url: "ftp://b/metrics" must start with http:// or https://`}},
		{"duplicate target", "source:\n  targets:\n    - url: http://a:1/metrics\n    - url: http://a:1/other\n", []string{"p.yml:4: field source.targets[1].url: instance a:1 is already listed as source.targets[0]"}},
		{"bad engine", "source:\n  targets:\n    - url: http://a:1/metrics\n      engine: vLLM!\n", []string{`p.yml:4: field source.targets[0].engine: "vLLM!" is not an engine name`}},
		{"missing url", "source:\n  prometheus:\n    query_timeout: 5s\n", []string{"p.yml:2: field source.prometheus.url: is required"}},
		{"negative retries", "source:\n  prometheus:\n    url: http://a:9090\n    retries: -1\n", []string{"p.yml:4: field source.prometheus.retries: must not be negative"}},
		{"wrong type", "source:\n  prometheus:\n    url: http://a:9090\n    retries: many\n", []string{"p.yml:4: field source.prometheus.retries:", "many"}},
		{"window too short", "global: {scrape_interval: 1m, scrape_timeout: 10s}\nsource: {targets: [{url: http://a:1}]}\n", []string{"field collector.rate_window: 1m covers fewer than two scrapes"}},
		{"workflow window too short", "global: {evaluation_interval: 15s}\nsource: {targets: [{url: http://a:1}]}\nworkflow:\n  approvers: [bob]\n  webhook: {url: http://h:1/, secret: s}\n  window: 2m\n", []string{"p.yml:6: field workflow.window: a workflow window of 2m0s holds 8 samples at an evaluation interval of 15s, and validation needs 20 per side: make workflow.window at least 5m0s"}},
		{"default workflow window too short", "global: {evaluation_interval: 1m, scrape_interval: 15s}\nsource: {targets: [{url: http://a:1}]}\nworkflow:\n  approvers: [bob]\n  webhook: {url: http://h:1/, secret: s}\n", []string{"field global.evaluation_interval: a workflow window of 15m0s holds 15 samples", "at least 20m0s"}},
		{"instance without name", "source: {targets: [{url: http://a:1}]}\ninstances:\n  - model: x\n", []string{"p.yml:3: field instances[0].instance: is required"}},
		{"bad auth", "source:\n  prometheus:\n    url: http://a:9090\n    basic_auth: {username: u, password: p, password_file: /f}\n", []string{"p.yml:2: field source.prometheus: at most one of basic_auth password, password_file"}},
		{"alertmanager URL as target", "source: {targets: [{url: http://a:1}]}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [http://am:9093]\n", []string{`p.yml:5: field alerting.alertmanagers[0].static_configs[0].targets[0]: "http://am:9093" is not a valid hostname`}},
		{"alertmanager without targets", "source: {targets: [{url: http://a:1}]}\nalerting:\n  alertmanagers:\n    - scheme: https\n", []string{"p.yml:4: field alerting.alertmanagers[0]: lists no Alertmanager: add static_configs"}},
		{"unsupported discovery", "source: {targets: [{url: http://a:1}]}\nalerting:\n  alertmanagers:\n    - kubernetes_sd_configs: [{role: pod}]\n", []string{`p.yml:4: field alerting.alertmanagers[0].kubernetes_sd_configs: unknown field "kubernetes_sd_configs": the agent finds Alertmanagers through static_configs only`}},
		{"alertmanager API v1", "source: {targets: [{url: http://a:1}]}\nalerting:\n  alertmanagers:\n    - static_configs: [{targets: [am:9093]}]\n      api_version: v1\n", []string{"p.yml:5: field alerting.alertmanagers[0].api_version", "v1"}},
		{"several errors", "global:\n  scrape_interval: 0s\nsource:\n  targets: []\n", []string{"p.yml:2: field global.scrape_interval: must be greater than zero", "p.yml:4: field source.targets: is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.yaml), "p.yml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestDeprecatedWorkflowAlertmanagers(t *testing.T) {
	cfg, err := Load([]byte(`source: {targets: [{url: http://a:1}]}
alerting:
  alertmanagers: [{static_configs: [{targets: [am-0:9093]}]}]
workflow:
  alertmanagers: [https://user:s3cret@am-1:9443/prefix/]
`), "p.yml")
	if err != nil {
		t.Fatal(err)
	}
	ams := cfg.Alerting.AlertmanagerConfigs
	if len(ams) != 2 || len(cfg.Workflow.Alertmanagers) != 0 {
		t.Fatalf("alertmanagers: %d in alerting, %d left in workflow", len(ams), len(cfg.Workflow.Alertmanagers))
	}
	am := ams[1]
	if am.Scheme != "https" || am.PathPrefix != "/prefix" || am.HTTPClientConfig.BasicAuth == nil ||
		am.HTTPClientConfig.BasicAuth.Username != "user" || string(am.HTTPClientConfig.BasicAuth.Password) != "s3cret" ||
		am.APIVersion != "v2" || time.Duration(am.Timeout) != 10*time.Second {
		t.Errorf("migrated entry %+v", am)
	}
	targets := cfg.AlertmanagerTargets()
	if got := targets["config-1"]; len(got) != 1 || string(got[0].Targets[0]["__address__"]) != "am-1:9443" {
		t.Errorf("targets of the migrated entry: %v", got)
	}
	if got := targets["config-0"]; len(got) != 1 || string(got[0].Targets[0]["__address__"]) != "am-0:9093" {
		t.Errorf("targets of the configured entry: %v", got)
	}
	w := cfg.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "workflow.alertmanagers is deprecated") || !strings.Contains(w[0], "path_prefix: /prefix") ||
		!strings.Contains(w[0], "- am-1:9443") || strings.Contains(w[0], "s3cret") {
		t.Errorf("warnings %q", w)
	}
}
