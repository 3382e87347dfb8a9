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
	"testing"
	"time"
)

// loadedServer serves a vLLM exposition with running and waiting requests
// and a request counter that grows at rps with wall time.
func loadedServer(t *testing.T, running, waiting int, rps float64) *httptest.Server {
	t.Helper()
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, `# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} %d
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} %d
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} %g
`, running, waiting, 1000+rps*time.Since(start).Seconds())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// longBusyRule fires on a busy server only after an hour: a one-shot
// analysis can see it pending, never firing.
const longBusyRule = `groups:
  - name: test
    rules:
      - alert: LongBusy
        expr: llm_requests_running > 10
        for: 1h
        labels: {category: throughput, severity: info, bottleneck: B2}
        annotations:
          summary: "{{ $labels.instance }} runs {{ $value }} requests"
          description: busy
          runbook_url: https://example.invalid/runbook
          recommend: scale_out
`

func TestAnalyzeShortWindow(t *testing.T) {
	tests := []struct {
		name             string
		running, waiting int
		// wantPending is whether LongBusy is pending and its scale_out
		// recommendation marked from_pending.
		wantPending bool
	}{
		{"busy server", 12, 2, true},
		{"idle server", 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := loadedServer(t, tc.running, tc.waiting, 2)
			inst := strings.TrimPrefix(v.URL, "http://")
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "long.yml"), []byte(longBusyRule), 0o644); err != nil {
				t.Fatal(err)
			}
			cfgFile := filepath.Join(dir, "perfagent.yml")
			cfg := fastConfig(v.URL) + "rules:\n  rule_files: [long.yml]\ninstances:\n  - {instance: '" + inst + "', settings: {max_num_seqs: '16'}}\n"
			if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"analyze", "--config.file", cfgFile, "-o", "json"}, &stdout, &stderr); code != exitSuccess {
				t.Fatalf("analyze = %d\n%s", code, stderr.String())
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, stdout.String())
			}
			for _, k := range []string{"instances", "bottlenecks", "recommendations", "skipped", "notes"} {
				if v, ok := raw[k]; !ok || !bytes.HasPrefix(v, []byte("[")) {
					t.Errorf("%s = %s, want a list", k, v)
				}
			}
			var out struct {
				Bottlenecks     []struct{ Rule, State string }
				Recommendations []struct {
					ID          string `json:"id"`
					FromPending bool   `json:"from_pending"`
				}
				Notes []string
			}
			if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			// The window is one evaluation in embedded mode: every rule
			// with a `for` can only be pending.
			wantNote := "window 0s (embedded mode evaluates the rules once, after scraping for 2.5s) is shorter than the `for` of rules "
			if len(out.Notes) != 1 || !strings.HasPrefix(out.Notes[0], wantNote) || !strings.Contains(out.Notes[0], "LongBusy (1h)") {
				t.Errorf("notes = %q, want one starting %q naming LongBusy (1h)", out.Notes, wantNote)
			}
			if !strings.Contains(stderr.String(), "perfagent analyze: note: "+wantNote) {
				t.Errorf("stderr lacks the note:\n%s", stderr.String())
			}
			pending := false
			for _, b := range out.Bottlenecks {
				if b.Rule == "LongBusy" {
					pending = b.State == "pending"
				}
			}
			fromPending := false
			for _, r := range out.Recommendations {
				if r.ID == "scale_out" {
					fromPending = r.FromPending
				}
			}
			if pending != tc.wantPending || fromPending != tc.wantPending {
				t.Errorf("LongBusy pending %v, scale_out from pending %v; want %v:\n%s", pending, fromPending, tc.wantPending, stdout.String())
			}
		})
	}
}
