package collector

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

const fakeProfile = `
groups:
  - name: fake
    rules:
      - record: llm_instance_info
        expr: group by (instance, model) (label_replace(fake_running, "model", "$1", "model_name", "(.*)"))
        labels: {engine: fake}
      - record: llm_requests_running
        expr: sum by (instance, model) (label_replace(fake_running, "model", "$1", "model_name", "(.*)"))
        labels: {engine: fake}
      - record: llm_generation_tokens_per_second
        expr: sum by (instance, model) (label_replace(rate(fake_tokens_total[1m]), "model", "$1", "model_name", "(.*)"))
        labels: {engine: fake}
      - record: llm_prefix_cache_hit_ratio
        expr: sum by (instance, model) (label_replace(fake_hits, "model", "$1", "model_name", "(.*)")) / sum by (instance, model) (label_replace(fake_queries, "model", "$1", "model_name", "(.*)"))
        labels: {engine: fake}
`

// otherProfile matches every instance that fakeProfile matches, and gives
// no model label, like TGI.
const otherProfile = `
groups:
  - name: other
    rules:
      - record: llm_instance_info
        expr: group by (instance) (fake_running)
        labels: {engine: other}
      - record: llm_requests_waiting
        expr: sum by (instance) (fake_running) * 2
        labels: {engine: other}
`

func newTestCollector(t *testing.T, store *signalstore.Store, cfg config.Config, profs ...*Profile) *Collector {
	t.Helper()
	c := New(Options{Metrics: testMetrics(), Store: store})
	if err := c.ApplyConfig(cfg, store, profs); err != nil {
		t.Fatal(err)
	}
	return c
}

func fakeExposition(running, tokens float64) string {
	return fmt.Sprintf(`# TYPE fake_running gauge
fake_running{model_name="m1"} %g
# TYPE fake_tokens_total counter
fake_tokens_total{model_name="m1"} %g
fake_hits{model_name="m1"} 0
fake_queries{model_name="m1"} 0
`, running, tokens)
}

func TestCollectComputesSignalsPerInstance(t *testing.T) {
	store := openTestStore(t)
	// a: 4 running, tokens grow 30/15s = 2/s. b: 7 running, 6/s.
	for i := range 4 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		scrapeText(t, store, "a:8000", ts, fakeExposition(4, 1000+30*float64(i)))
		scrapeText(t, store, "b:8000", ts, fakeExposition(7, 5000+90*float64(i)))
	}
	c := newTestCollector(t, store, config.Default(), mustProfile(t, "fake.yml", fakeProfile))
	now := t0.Add(45 * time.Second)
	snap, err := c.Collect(context.Background(), now, CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, instance string
		want           float64
	}{
		{"llm_requests_running", "a:8000", 4},
		{"llm_requests_running", "b:8000", 7},
		// Four samples 15 s apart in (now-1m, now]: the extrapolated rate
		// is the slope, (last-first)/45 s.
		{"llm_generation_tokens_per_second", "a:8000", 90.0 / 45},
		{"llm_generation_tokens_per_second", "b:8000", 270.0 / 45},
		{"llm_instance_info", "a:8000", 1},
	}
	for _, tc := range tests {
		got, ok := signalValue(snap, tc.name, tc.instance, "")
		if !ok {
			t.Errorf("%s{instance=%q} missing", tc.name, tc.instance)
			continue
		}
		if diff := got - tc.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s{instance=%q} = %g, want %g", tc.name, tc.instance, got, tc.want)
		}
	}
	// 0/0 is NaN: a signal without data is absent, not NaN.
	if v, ok := signalValue(snap, "llm_prefix_cache_hit_ratio", "a:8000", ""); ok {
		t.Errorf("llm_prefix_cache_hit_ratio = %g, want absent", v)
	}
	in := snap.Instance("a:8000")
	if in == nil || in.Engine != "fake" || in.Model != "m1" {
		t.Fatalf("instance a:8000 = %+v, want engine fake, model m1", in)
	}
	if len(snap.Instances) != 2 {
		t.Errorf("instances = %d, want 2", len(snap.Instances))
	}
	// Every sample carries exactly the identity labels.
	for _, s := range snap.Samples {
		var names []string
		s.Labels.Range(func(l labels.Label) { names = append(names, l.Name) })
		if got := strings.Join(names, ","); got != "__name__,engine,instance,model" {
			t.Errorf("%s has labels %s", s.Labels, got)
		}
	}
}

func TestCollectDropsInstancesWithoutInfo(t *testing.T) {
	store := openTestStore(t)
	for i := range 4 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		scrapeText(t, store, "up:8000", ts, fakeExposition(1, 100+float64(i)))
		// gone:8000 stopped answering after its second scrape; the
		// scraper wrote staleness markers for its series.
		if i < 2 {
			scrapeText(t, store, "gone:8000", ts, fakeExposition(3, 100+float64(i)))
		} else if i == 2 {
			markStale(t, store, "gone:8000", ts, `fake_running{model_name="m1"}`, `fake_tokens_total{model_name="m1"}`)
		}
	}
	c := newTestCollector(t, store, config.Default(), mustProfile(t, "fake.yml", fakeProfile))
	snap, err := c.Collect(context.Background(), t0.Add(45*time.Second), CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snap.Samples {
		if s.Labels.Get(signals.LabelInstance) == "gone:8000" {
			t.Errorf("stale instance still has %s", s.Labels)
		}
	}
	if snap.Instance("up:8000") == nil {
		t.Error("up:8000 missing")
	}
}

func TestCollectEnginePinAndModelFromConfig(t *testing.T) {
	store := openTestStore(t)
	scrapeText(t, store, "x:1", t0, fakeExposition(5, 0))
	scrapeText(t, store, "y:1", t0, fakeExposition(2, 0))
	fake := mustProfile(t, "fake.yml", fakeProfile)
	other := mustProfile(t, "other.yml", otherProfile)
	cfg := config.Default()
	cfg.Instances = []config.InstanceConfig{{Instance: "y:1", Engine: "other", Model: "named-in-config"}}
	c := newTestCollector(t, store, cfg, fake, other)
	snap, err := c.Collect(context.Background(), t0, CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Both profiles match both instances: detection keeps the first
	// profile unless the configuration pins another.
	if got := snap.Instance("x:1"); got == nil || got.Engine != "fake" {
		t.Errorf("x:1 = %+v, want engine fake", got)
	}
	y := snap.Instance("y:1")
	if y == nil || y.Engine != "other" || y.Model != "named-in-config" {
		t.Fatalf("y:1 = %+v, want engine other, model named-in-config", y)
	}
	if v, ok := signalValue(snap, "llm_requests_waiting", "y:1", ""); !ok || v != 4 {
		t.Errorf("y:1 llm_requests_waiting = %g, %v; want 4", v, ok)
	}
	if _, ok := signalValue(snap, "llm_requests_running", "y:1", ""); ok {
		t.Error("y:1 has a signal of the fake profile although it is pinned to other")
	}
	if _, ok := signalValue(snap, "llm_requests_waiting", "x:1", ""); ok {
		t.Error("x:1 has a signal of the other profile although fake detected it first")
	}
	for _, s := range snap.Samples {
		if s.Labels.Get(signals.LabelInstance) == "y:1" && s.Labels.Get(signals.LabelModel) != "named-in-config" {
			t.Errorf("%s: model label not filled from config", s.Labels)
		}
	}
}

func TestCollectOptionsNarrow(t *testing.T) {
	store := openTestStore(t)
	scrapeText(t, store, "x:1", t0, fakeExposition(5, 0))
	scrapeText(t, store, "y:1", t0, fakeExposition(2, 0))
	c := newTestCollector(t, store, config.Default(), mustProfile(t, "fake.yml", fakeProfile), mustProfile(t, "other.yml", otherProfile))
	snap, err := c.Collect(context.Background(), t0, CollectOptions{Instances: []string{"y:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Instances) != 1 || snap.Instances[0].Instance != "y:1" {
		t.Errorf("instances = %v, want only y:1", snap.Instances)
	}
	snap, err = c.Collect(context.Background(), t0, CollectOptions{Engine: "other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range snap.Instances {
		if in.Engine != "other" {
			t.Errorf("%s has engine %s with the engine filter other", in.Instance, in.Engine)
		}
	}
	// One query per rule of the selected profile, whatever the fleet size.
	if snap.Queries != 2 {
		t.Errorf("queries = %d, want 2", snap.Queries)
	}
}

func TestCycleAppendsHistoryAndStaleMarkers(t *testing.T) {
	store := openTestStore(t)
	scrapeText(t, store, "a:1", t0, fakeExposition(3, 0))
	scrapeText(t, store, "b:1", t0, fakeExposition(6, 0))
	c := newTestCollector(t, store, config.Default(), mustProfile(t, "fake.yml", fakeProfile))
	ctx := context.Background()
	if _, err := c.Cycle(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if !c.Ready() {
		t.Error("not ready after a successful cycle")
	}
	t1 := t0.Add(15 * time.Second)
	scrapeText(t, store, "a:1", t1, fakeExposition(3, 0))
	markStale(t, store, "b:1", t1, `fake_running{model_name="m1"}`)
	if _, err := c.Cycle(ctx, t1); err != nil {
		t.Fatal(err)
	}
	v, err := store.Query(ctx, "llm_requests_running", t1)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].Metric.Get(signals.LabelInstance) != "a:1" {
		t.Errorf("llm_requests_running at t1 = %v, want only a:1 (b:1's series marked stale)", v)
	}
	v, err = store.Query(ctx, "llm_requests_running", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 2 {
		t.Errorf("llm_requests_running at t0 = %v, want both instances in history", v)
	}
}

func TestBuiltinSettingsAndCapacity(t *testing.T) {
	store := openTestStore(t)
	scrapeText(t, store, "v:8000", t0, `# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",num_gpu_blocks="27000",sliding_window="None"} 1
`)
	prof := mustProfile(t, "vllm.yml", `
groups:
  - name: vllm
    rules:
      - record: llm_instance_info
        expr: group by (instance, model) (label_replace(vllm:num_requests_running, "model", "$1", "model_name", "(.*)"))
        labels: {engine: vllm}
`)
	cfg := config.Default()
	cfg.Instances = []config.InstanceConfig{{Instance: "v:8000", Settings: map[string]string{"max_num_seqs": "128", "block_size": "32"}}}
	c := newTestCollector(t, store, cfg, prof)
	snap, err := c.Collect(context.Background(), t0, CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := snap.Instance("v:8000")
	if in == nil {
		t.Fatal("v:8000 missing")
	}
	want := map[string]Setting{
		"gpu_memory_utilization": {"0.9", SettingFromMetrics},
		"num_gpu_blocks":         {"27000", SettingFromMetrics},
		"enable_prefix_caching":  {"True", SettingFromMetrics},
		"cache_dtype":            {"auto", SettingFromMetrics},
		"max_num_seqs":           {"128", SettingFromConfig},
		// The configuration overrides what the engine says.
		"block_size": {"32", SettingFromConfig},
	}
	for k, w := range want {
		if got := in.Settings[k]; got != w {
			t.Errorf("setting %s = %+v, want %+v", k, got, w)
		}
	}
	if _, ok := in.Settings["sliding_window"]; ok {
		t.Error(`label value "None" became a setting`)
	}
	derived := []struct {
		name string
		want float64
	}{
		{signals.KVCacheCapacity, 27000 * 32},
		{signals.MaxRunningRequests, 128},
		{signals.PrefixCachingEnabled, 1},
	}
	for _, d := range derived {
		if v, ok := signalValue(snap, d.name, "v:8000", ""); !ok || v != d.want {
			t.Errorf("%s = %g, %v; want %g", d.name, v, ok, d.want)
		}
	}
}

type failingSource struct{ err error }

func (f failingSource) Query(context.Context, string, time.Time) (promql.Vector, error) {
	return nil, f.err
}

func (f failingSource) QueryRange(context.Context, string, time.Time, time.Time, time.Duration) (promql.Matrix, error) {
	return nil, f.err
}

func TestCycleFailsWhenSourceIsDown(t *testing.T) {
	store := openTestStore(t)
	c := New(Options{Metrics: testMetrics(), Store: store})
	down := errors.New("connection refused")
	if err := c.ApplyConfig(config.Default(), failingSource{down}, []*Profile{mustProfile(t, "fake.yml", fakeProfile)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cycle(context.Background(), t0); !errors.Is(err, down) {
		t.Fatalf("Cycle error = %v, want %v", err, down)
	}
	if c.Ready() || c.Latest() != nil {
		t.Error("a failed cycle left the collector ready or with a snapshot")
	}
}

// switchSource answers from src, or fails with err while down.
type switchSource struct {
	src  Source
	down *bool
	err  error
}

func (s switchSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	if *s.down {
		return nil, s.err
	}
	return s.src.Query(ctx, expr, ts)
}

func (s switchSource) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	if *s.down {
		return nil, s.err
	}
	return s.src.QueryRange(ctx, expr, start, end, step)
}

// TestFailedCycleEndsTheSignals: a cycle whose source is down marks every
// series of the last cycle stale, so that history has a gap where nothing
// was measured instead of the last values carried over for the lookback
// delta; the next cycle that succeeds starts them again.
func TestFailedCycleEndsTheSignals(t *testing.T) {
	step := 15 * time.Second
	tests := []struct {
		name string
		// up lists, per cycle, whether the source answers.
		up []bool
		// want is how many instances have llm_requests_running at each
		// cycle's time, and half a step after it.
		want []int
	}{
		{"always up", []bool{true, true, true}, []int{2, 2, 2}},
		{"down after two cycles", []bool{true, true, false, false}, []int{2, 2, 0, 0}},
		{"down then back", []bool{true, false, false, true}, []int{2, 0, 0, 2}},
		{"down from the start", []bool{false, true}, []int{0, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := openTestStore(t)
			ctx := context.Background()
			down := false
			src := switchSource{src: store, down: &down, err: errors.New("connection refused")}
			c := New(Options{Metrics: testMetrics(), Store: store})
			if err := c.ApplyConfig(config.Default(), src, []*Profile{mustProfile(t, "fake.yml", fakeProfile)}); err != nil {
				t.Fatal(err)
			}
			for i, up := range tc.up {
				ts := t0.Add(time.Duration(i) * step)
				// The servers keep being scraped: only the source the
				// collector reads fails.
				scrapeText(t, store, "a:1", ts.Add(-time.Second), fakeExposition(3, 0))
				scrapeText(t, store, "b:1", ts.Add(-time.Second), fakeExposition(6, 0))
				down = !up
				_, err := c.Cycle(ctx, ts)
				if up != (err == nil) {
					t.Fatalf("cycle %d: error %v with the source up=%v", i, err, up)
				}
				if c.Ready() != up {
					t.Errorf("cycle %d: Ready() = %v with the source up=%v", i, c.Ready(), up)
				}
			}
			down = false
			for i, want := range tc.want {
				for _, at := range []time.Time{t0.Add(time.Duration(i) * step), t0.Add(time.Duration(i)*step + step/2)} {
					v, err := store.Query(ctx, "llm_requests_running", at)
					if err != nil {
						t.Fatal(err)
					}
					if len(v) != want {
						t.Errorf("llm_requests_running at cycle %d (%s) = %v, want %d instances", i, at.Sub(t0), v, want)
					}
				}
			}
		})
	}
}

// partSource answers from src, except the queries that mention failOn,
// which fail with err.
type partSource struct {
	src    Source
	failOn string
	err    error
}

func (s partSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	if strings.Contains(expr, s.failOn) {
		return nil, s.err
	}
	return s.src.Query(ctx, expr, ts)
}

func (s partSource) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	return s.src.QueryRange(ctx, expr, start, end, step)
}

// TestCycleFailsWhenSourceGoesAwayMidCycle: a query the source refuses
// costs only its signal, but a source that cannot be reached for one query
// fails the whole cycle, since the snapshot would miss signals the rules
// read; the signals of the last cycle are then marked stale.
func TestCycleFailsWhenSourceGoesAwayMidCycle(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantFail bool
	}{
		{"bad query", errors.New("bad_data: parse error"), false},
		{"unreachable", unavailableError{errors.New("dial tcp: connection refused")}, true},
		{"unreachable, wrapped", fmt.Errorf("querying: %w", unavailableError{errors.New("server_error: 503")}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := openTestStore(t)
			ctx := context.Background()
			scrapeText(t, store, "a:1", t0.Add(-time.Second), fakeExposition(3, 0))
			c := New(Options{Metrics: testMetrics(), Store: store})
			if err := c.ApplyConfig(config.Default(), store, []*Profile{mustProfile(t, "fake.yml", fakeProfile)}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Cycle(ctx, t0); err != nil {
				t.Fatal(err)
			}
			// The instance rule answers; a later rule of the cycle does not.
			if err := c.ApplyConfig(config.Default(), partSource{store, "fake_tokens_total", tc.err}, []*Profile{mustProfile(t, "fake.yml", fakeProfile)}); err != nil {
				t.Fatal(err)
			}
			t1 := t0.Add(15 * time.Second)
			snap, err := c.Cycle(ctx, t1)
			if gotFail := err != nil; gotFail != tc.wantFail {
				t.Fatalf("Cycle error = %v, want failure %v", err, tc.wantFail)
			}
			if tc.wantFail {
				if !errors.Is(err, ErrUnavailable) || c.Ready() {
					t.Errorf("error %v is not ErrUnavailable, or the collector is still ready", err)
				}
				v, err := store.Query(ctx, "llm_requests_running", t1)
				if err != nil || len(v) != 0 {
					t.Errorf("llm_requests_running after the failed cycle = %v, %v; want it stale", v, err)
				}
				return
			}
			if len(snap.Errors) != 1 || snap.Instance("a:1") == nil {
				t.Errorf("snapshot errors %v, instances %v; want the refused rule listed and a:1 kept", snap.Errors, snap.Instances)
			}
		})
	}
}

func TestRateWindowRewritesEveryRange(t *testing.T) {
	store := openTestStore(t)
	cfg := config.Default()
	cfg.Collector.RateWindow = config.Duration(30 * time.Second)
	c := newTestCollector(t, store, cfg, mustProfile(t, "fake.yml", fakeProfile))
	exprs := c.SignalExpressions()["llm_generation_tokens_per_second"]["fake"]
	if len(exprs) != 1 || !strings.Contains(exprs[0], "[30s]") || strings.Contains(exprs[0], "[1m]") {
		t.Errorf("expression = %v, want every range 30s", exprs)
	}
}

func TestParseProfileErrors(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"alert rule", `
groups:
  - name: x
    rules:
      - record: llm_instance_info
        expr: up
        labels: {engine: x}
      - alert: Foo
        expr: up
`, "x.yml:8: rule 2: profiles hold recording rules only"},
		{"first rule", `
groups:
  - name: x
    rules:
      - record: llm_requests_running
        expr: up
        labels: {engine: x}
`, "x.yml:5: rule 1: the first rule must record llm_instance_info"},
		{"engine label", `
groups:
  - name: x
    rules:
      - record: llm_instance_info
        expr: up
        labels: {engine: y}
`, `labels.engine is "y"; it must be the group name "x"`},
		{"two groups", `
groups:
  - name: x
    rules: [{record: llm_instance_info, expr: up, labels: {engine: x}}]
  - name: y
    rules: [{record: llm_instance_info, expr: up, labels: {engine: y}}]
`, "exactly one rule group"},
		{"bad promql", `
groups:
  - name: x
    rules:
      - record: llm_instance_info
        expr: sum by (instance (up)
        labels: {engine: x}
`, "x.yml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := ParseProfile("x.yml", []byte(tc.content))
			if len(errs) == 0 {
				t.Fatal("no error")
			}
			all := fmt.Sprint(errs)
			if !strings.Contains(all, tc.want) {
				t.Errorf("errors %q do not contain %q", all, tc.want)
			}
		})
	}
}

// TestCycleKeepsOneCopyOfEachSeriesLabels holds the snapshot's share of
// the agent's memory: a series appended again takes the label set of the
// cycle before, the one the store holds, so at a thousand instances the
// latest snapshot does not keep a second copy of every series' labels.
func TestCycleKeepsOneCopyOfEachSeriesLabels(t *testing.T) {
	store := openTestStore(t)
	c := newTestCollector(t, store, config.Default(), mustProfile(t, "fake.yml", fakeProfile))
	ctx := context.Background()
	var snaps []*Snapshot
	for i := range 3 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		scrapeText(t, store, "a:1", ts, fakeExposition(3, float64(i)))
		scrapeText(t, store, "b:1", ts, fakeExposition(6, float64(i)))
		snap, err := c.Cycle(ctx, ts)
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, snap)
	}
	shared := 0
	for i := 1; i < len(snaps); i++ {
		before := map[string]uintptr{}
		for _, s := range snaps[i-1].Samples {
			before[s.Labels.String()] = labelsData(t, s.Labels)
		}
		for _, s := range snaps[i].Samples {
			want, ok := before[s.Labels.String()]
			if !ok {
				continue
			}
			if got := labelsData(t, s.Labels); got != want {
				t.Errorf("cycle %d: %s is a copy of the label set of the cycle before, want the same set", i+1, s.Labels)
			}
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("no series was appended by two cycles")
	}
}

// labelsData is where l's labels are kept, to tell a shared label set
// from an equal copy. It reads the string that holds the labels in
// Prometheus's default (stringlabels) build.
func labelsData(t *testing.T, l labels.Labels) uintptr {
	t.Helper()
	v := reflect.ValueOf(l)
	if v.Kind() != reflect.Struct || v.NumField() != 1 || v.Field(0).Kind() != reflect.String {
		t.Skip("labels are not kept in one string in this build")
	}
	return uintptr(unsafe.Pointer(unsafe.StringData(v.Field(0).String())))
}

func TestSeriesSetKeepsCollidingSetsApart(t *testing.T) {
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	// Both sets are added under one hash, as if their hashes collided.
	s := newSeriesSet(0)
	s.add(1, a)
	s.add(1, b)
	s.add(1, labels.FromStrings("__name__", "a"))
	s.add(1, labels.FromStrings("__name__", "b"))
	if n := s.len(); n != 2 {
		t.Errorf("the set holds %d sets after adding a, b, a and b again, want 2", n)
	}
	for _, tc := range []struct {
		name string
		hash uint64
		l    labels.Labels
		want bool
	}{
		{"first of the bucket", 1, a, true},
		{"second of the bucket", 1, b, true},
		{"equal set under another hash", 2, a, false},
		{"other set under the same hash", 1, labels.FromStrings("__name__", "c"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := s.get(tc.hash, tc.l)
			if ok != tc.want {
				t.Fatalf("found %v, want %v", ok, tc.want)
			}
			if ok && !labels.Equal(got, tc.l) {
				t.Errorf("got %s, want %s", got, tc.l)
			}
		})
	}
	var each []string
	if err := s.each(func(h uint64, l labels.Labels) error {
		each = append(each, fmt.Sprintf("%d %s", h, l))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(each)
	if want := []string{`1 {__name__="a"}`, `1 {__name__="b"}`}; !slices.Equal(each, want) {
		t.Errorf("each visited %q, want %q", each, want)
	}
}
