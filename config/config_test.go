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
