package rules

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

type fakeQuerier struct {
	v   promql.Vector
	err error
	at  time.Time
}

func (f *fakeQuerier) Query(_ context.Context, expr string, ts time.Time) (promql.Vector, error) {
	f.at = ts
	if expr != SaturationETASeries {
		return nil, errors.New("unexpected query " + expr)
	}
	return f.v, f.err
}

func eta(v float64, kv ...string) promql.Sample {
	return promql.Sample{Metric: labels.FromStrings(append([]string{"__name__", SaturationETASeries}, kv...)...), F: v}
}

func TestSaturationETACollector(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := &fakeQuerier{v: promql.Vector{
		eta(2400, "engine", "vllm", "model", "m", "resource", "kv_cache"),
		eta(300, "instance", "b:1", "engine", "vllm", "model", "m", "resource", "queue"),
		eta(1500, "instance", "a:1", "engine", "vllm", "model", "m", "resource", "kv_cache"),
	}}
	etas, err := SaturationETAs(context.Background(), q, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(etas) != 3 || etas[0].Instance != "a:1" || etas[1].Instance != "b:1" || etas[2].Instance != "" || etas[2].Seconds != 2400 {
		t.Errorf("forecasts = %+v, want a:1, b:1, then the pool", etas)
	}
	c := NewSaturationETACollector(q, func() (time.Time, bool) { return at, true })
	want := `# HELP perfagent_saturation_eta_seconds Seconds until the resource (kv_cache, queue) of an instance, or of a model pool without an instance label, saturates at its current growth; absent when no saturation is ahead (docs/forecasts.md).
# TYPE perfagent_saturation_eta_seconds gauge
perfagent_saturation_eta_seconds{engine="vllm",instance="",model="m",resource="kv_cache"} 2400
perfagent_saturation_eta_seconds{engine="vllm",instance="a:1",model="m",resource="kv_cache"} 1500
perfagent_saturation_eta_seconds{engine="vllm",instance="b:1",model="m",resource="queue"} 300
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if !q.at.Equal(at) {
		t.Errorf("read at %s, want the last evaluation %s", q.at, at)
	}
	// Before the first evaluation, and when the store fails: nothing, or
	// an error, never a stale value.
	none := NewSaturationETACollector(q, func() (time.Time, bool) { return time.Time{}, false })
	if n := testutil.CollectAndCount(none); n != 0 {
		t.Errorf("exported %d series before the first evaluation", n)
	}
	q.err = errors.New("closed")
	if err := testutil.CollectAndCompare(c, strings.NewReader("")); err == nil {
		t.Error("a failing store gave no error")
	}
}
