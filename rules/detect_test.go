package rules

import (
	"context"
	"errors"
	"testing"
	"time"
)

const busyRule = `groups:
  - name: test
    rules:
      - alert: Busy
        expr: llm_requests_running > 10
        for: 2m
        labels: {category: throughput, severity: warning, bottleneck: T1}
        annotations: {summary: "{{ $labels.instance }} busy", description: d, runbook_url: https://example.invalid/r, recommend: scale_out}
      - alert: Idle
        expr: llm_requests_running < 1
        labels: {category: utilization, severity: info, bottleneck: T2}
        annotations: {summary: idle, description: d, runbook_url: https://example.invalid/r, recommend: scale_in}
`

func TestDetectAtPastTimesLeavesLiveStateAlone(t *testing.T) {
	store := openStore(t, t.TempDir())
	// a:1 is busy from 5m on; b:1 is idle throughout.
	for i := range 41 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		running := 4.0
		if i >= 20 {
			running = 20
		}
		appendAt(t, store, ts,
			point{signal("llm_requests_running", "a:1", "vllm", "m"), running},
			point{signal("llm_requests_running", "b:1", "vllm", "m"), 0})
	}
	m := NewManager(onStore(store, ManagerOptions{}))
	if err := m.Update([]string{tempRuleFile(t, busyRule)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name  string
		at    time.Duration
		o     DetectOptions
		wants map[string]State // rule/instance → state
	}{
		{"before the load", 4 * time.Minute, DetectOptions{}, map[string]State{"Idle/b:1": StateFiring}},
		{"for not elapsed", 6 * time.Minute, DetectOptions{}, map[string]State{"Busy/a:1": StatePending, "Idle/b:1": StateFiring}},
		{"for elapsed", 8 * time.Minute, DetectOptions{}, map[string]State{"Busy/a:1": StateFiring, "Idle/b:1": StateFiring}},
		{"one instance", 8 * time.Minute, DetectOptions{Instances: []string{"a:1"}}, map[string]State{"Busy/a:1": StateFiring}},
		{"one rule", 8 * time.Minute, DetectOptions{Rules: []string{"Idle"}}, map[string]State{"Idle/b:1": StateFiring}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := m.Detect(ctx, t0.Add(tc.at), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]State{}
			for _, b := range bs {
				got[b.Rule+"/"+b.Instance] = b.State
			}
			if len(got) != len(tc.wants) {
				t.Errorf("got %v, want %v", got, tc.wants)
			}
			for k, w := range tc.wants {
				if got[k] != w {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], w, got)
				}
			}
		})
	}
	if len(m.Bottlenecks()) != 0 {
		t.Errorf("Detect changed the live bottlenecks: %v", m.Bottlenecks())
	}
	if v := query(t, store, "ALERTS", t0.Add(8*time.Minute)); len(v) != 0 {
		t.Errorf("Detect wrote ALERTS into the store: %v", v)
	}
	if _, err := m.Detect(ctx, t0, DetectOptions{Rules: []string{"Nope"}}); !errors.Is(err, ErrUnknownRule) {
		t.Errorf("unknown rule: err = %v, want ErrUnknownRule", err)
	}
}
