package collector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signalstore"
)

func TestReach(t *testing.T) {
	for _, tt := range []struct {
		expr string
		want time.Duration
	}{
		{"up", signalstore.LookbackDelta},
		{"rate(x[1m])", time.Minute},
		{"rate(x[10m])", 10 * time.Minute},
		{"rate(x[1m] offset 7m)", 8 * time.Minute},
		{"max_over_time(rate(x[1m])[15m:1m])", 16 * time.Minute},
		{"rate(x[1m]) / y", signalstore.LookbackDelta},
		{"vector(1)", 0},
	} {
		e, err := NewParser().ParseExpr(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := reach([]parser.Expr{e}); got != tt.want {
			t.Errorf("reach(%s) = %s, want %s", tt.expr, got, tt.want)
		}
	}
}

// TestEmbeddedSourceKeepsWhatTheProfilesRead checks the embedded source's
// retention of scraped samples: what the profiles read at the configured
// rate window, no less (the signals are those of a store that keeps
// everything) and not much more (older samples are dropped once a cycle).
func TestEmbeddedSourceKeepsWhatTheProfilesRead(t *testing.T) {
	builtin, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg := config.Default()
	cfg.Global.ScrapeInterval = config.Duration(15 * time.Second)
	for _, tt := range []struct {
		window config.Duration
		want   time.Duration
	}{
		// The settings and instance queries read gauges: their lookback.
		{config.Duration(time.Minute), signalstore.LookbackDelta + 30*time.Second},
		{config.Duration(10 * time.Minute), 10*time.Minute + 30*time.Second},
	} {
		cfg.Collector.RateWindow = tt.window
		store, err := signalstore.Open(signalstore.Options{Path: t.TempDir(), Retention: 24 * time.Hour, Raw: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		src, err := NewEmbeddedSource(store, nil, testMetrics(), nil, shard.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.ApplyConfig(cfg, builtin); err != nil {
			t.Fatal(err)
		}
		if got := src.RawRetention(); got != tt.want {
			t.Errorf("rate window %s: scraped samples kept %s, want %s", tt.window, got, tt.want)
		}
	}

	// An hour of scrapes of one server, at a one-minute rate window.
	cfg.Collector.RateWindow = config.Duration(time.Minute)
	// No label_replace: the embedded source would take the scrape to rename
	// model_name, and these samples are appended without one.
	fake := mustProfile(t, "plain.yml", `
groups:
  - name: plain
    rules:
      - record: llm_instance_info
        expr: group by (instance) (fake_running)
        labels: {engine: plain}
      - record: llm_requests_running
        expr: sum by (instance) (fake_running)
        labels: {engine: plain}
      - record: llm_generation_tokens_per_second
        expr: sum by (instance) (rate(fake_tokens_total[1m]))
        labels: {engine: plain}
`)
	raw, err := signalstore.Open(signalstore.Options{Path: t.TempDir(), Retention: 24 * time.Hour, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	everything := openTestStore(t)
	src, err := NewEmbeddedSource(raw, nil, testMetrics(), nil, shard.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.ApplyConfig(cfg, []*Profile{fake}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	end := t0.Add(time.Hour)
	for i := 0; i <= 240; i++ {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		text := fakeExposition(float64(i%7), 30*float64(i*i))
		scrapeText(t, everything, "a:1", ts, text)
		app := raw.RawAppendable().(storage.Appendable).Appender(ctx)
		if err := AppendExposition(app, []byte(text), ts, labels.FromStrings("instance", "a:1", "job", "test")); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(src Source, o CollectOptions) (*Snapshot, error) {
		c := New(Options{Metrics: testMetrics()})
		if err := c.ApplyConfig(cfg, src, []*Profile{fake}); err != nil {
			t.Fatal(err)
		}
		return c.Collect(ctx, end, o)
	}
	got, err := collect(src, CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src.Stop() // waits for the trim the collection started
	want, err := collect(everything, CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Samples) < 3 || len(got.Samples) != len(want.Samples) {
		t.Fatalf("%d signals from the trimmed store, %d from the whole one", len(got.Samples), len(want.Samples))
	}
	for i := range want.Samples {
		if !labels.Equal(got.Samples[i].Labels, want.Samples[i].Labels) || got.Samples[i].Value != want.Samples[i].Value {
			t.Errorf("signal %s = %g, want %s = %g", got.Samples[i].Labels, got.Samples[i].Value, want.Samples[i].Labels, want.Samples[i].Value)
		}
	}
	// The trim left the retention and at most one chunk before it.
	v, err := raw.Query(ctx, "count_over_time(fake_running[1h])", end)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].F < 22 || v[0].F > 22+40 {
		t.Errorf("scraped samples of the last hour after a cycle: %v, want 22 to 62 (5m30s and at most one 10m chunk)", v)
	}

	if _, err := collect(src, CollectOptions{Window: 5 * time.Minute}); err != nil {
		t.Errorf("a collection over 5m: %v", err)
	}
	_, err = collect(src, CollectOptions{Window: 10 * time.Minute})
	if !errors.Is(err, ErrWindowTooLong) {
		t.Errorf("a collection over 10m: %v, want ErrWindowTooLong", err)
	}
}
