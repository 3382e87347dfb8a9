package recommender

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/signalstore"
)

func TestFindingsKeepFiringOnly(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	got := Findings([]rules.Bottleneck{
		{Rule: "LLMKVCachePressure", ID: "B1", State: rules.StateFiring, Instance: "a:1", Engine: "vllm", Model: "m", Recommendations: []string{"raise_gpu_memory_utilization", "lower_max_num_seqs"}, ActiveAt: since, Value: 0.97},
		{Rule: "LLMQueueBacklog", ID: "B2", State: rules.StatePending, Instance: "a:1"},
	})
	if len(got) != 1 {
		t.Fatalf("findings = %+v, want the firing one only", got)
	}
	f := got[0]
	if f.Bottleneck != "B1" || f.Rule != "LLMKVCachePressure" || f.Instance != "a:1" || f.Engine != "vllm" || f.Model != "m" ||
		len(f.Recommend) != 2 || f.Recommend[1] != "lower_max_num_seqs" || !f.Since.Equal(since) || f.Value != 0.97 {
		t.Errorf("finding = %+v", f)
	}
}

func TestReadHistoryJoinsBatchAndITL(t *testing.T) {
	store, err := signalstore.Open(signalstore.Options{Path: t.TempDir(), Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	app := store.Appender(context.Background())
	for i := range 5 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second).UnixMilli()
		_, _ = app.Append(0, labels.FromStrings("__name__", "llm_requests_running", "instance", "a:1"), ts, float64(10*i))
		_, _ = app.Append(0, labels.FromStrings("__name__", "llm_inter_token_latency_seconds", "instance", "a:1", "quantile", "0.95"), ts, 0.02+0.001*float64(i))
		_, _ = app.Append(0, labels.FromStrings("__name__", "llm_inter_token_latency_seconds", "instance", "a:1", "quantile", "0.5"), ts, 1)
		// b:1 has a batch size from the third step on and an ITL until
		// the fourth: the two meet at the third and the fourth.
		if i >= 2 {
			_, _ = app.Append(0, labels.FromStrings("__name__", "llm_requests_running", "instance", "b:1"), ts, float64(i))
		}
		if i <= 3 {
			_, _ = app.Append(0, labels.FromStrings("__name__", "llm_inter_token_latency_seconds", "instance", "b:1", "quantile", "0.95"), ts, float64(i)/100)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	h, err := ReadHistory(context.Background(), store, now, time.Minute, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pts := h["a:1"]
	if len(pts) != 5 {
		t.Fatalf("points = %+v, want 5", pts)
	}
	if pts[4].Running != 40 || pts[4].ITL != 0.024 || !pts[4].Time.Equal(now) {
		t.Errorf("last point = %+v, want running 40, ITL 0.024 (the p95 series) at %s", pts[4], now)
	}
	// ITL's last sample stays current for the lookback, so the fifth step
	// joins too.
	b := h["b:1"]
	if len(b) != 3 || b[0].Running != 2 || b[0].ITL != 0.02 || b[1].Running != 3 || b[2].Running != 4 || b[2].ITL != 0.03 {
		t.Errorf("points of b:1 = %+v, want running 2, 3, 4 with ITL 0.02, 0.03, 0.03", b)
	}
}
