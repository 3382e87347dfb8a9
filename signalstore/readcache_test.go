package signalstore

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// appendScrapes appends scrapes from to to (excluded), one every 15 s
// from t0, to the raw samples: a counter by instance and reason (with a reset), a gauge
// that goes stale, a histogram with custom buckets (as the scrape keeps a
// classic one) and an exponential float histogram.
func appendScrapes(t *testing.T, s *Store, from, to int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; i++ {
		ts := t0.Add(time.Duration(i) * 15 * time.Second).UnixMilli()
		app := s.RawAppendable().AppenderV2(ctx)
		add := func(ls labels.Labels, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) {
			t.Helper()
			if _, err := app.Append(0, ls, 0, ts, v, h, fh, storage.AOptions{}); err != nil {
				t.Fatalf("appending %s: %v", ls, err)
			}
		}
		for _, in := range []string{"a:1", "b:1", "c:1"} {
			count := float64(i * 10)
			if in == "b:1" && i >= 20 {
				count = float64((i - 20) * 3) // restarted
			}
			add(labels.FromStrings("__name__", "req_total", "instance", in, "reason", "ok"), count, nil, nil)
			add(labels.FromStrings("__name__", "req_total", "instance", in, "reason", "error"), float64(i), nil, nil)
			running := float64(i % 7)
			if in == "c:1" && i >= 25 {
				running = math.Float64frombits(value.StaleNaN)
			}
			if in != "c:1" || i <= 25 {
				add(labels.FromStrings("__name__", "running", "instance", in), running, nil, nil)
			}
			u := uint64(i)
			add(labels.FromStrings("__name__", "latency_seconds", "instance", in), 0, &histogram.Histogram{
				Schema:          histogram.CustomBucketsSchema,
				Count:           5 * u,
				Sum:             1.5 * float64(u),
				PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
				PositiveBuckets: []int64{int64(u), int64(u), 0},
				CustomValues:    []float64{0.1, 0.5, 1},
			}, nil)
			add(labels.FromStrings("__name__", "tokens", "instance", in), 0, nil, &histogram.FloatHistogram{
				Schema:          1,
				Count:           4 * float64(i),
				Sum:             40 * float64(i),
				ZeroThreshold:   0.001,
				PositiveSpans:   []histogram.Span{{Offset: 2, Length: 2}},
				PositiveBuckets: []float64{float64(i), 3 * float64(i)},
			})
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// scrapedStore is a store with raw samples and n scrapes in them.
func scrapedStore(t *testing.T, n int) *Store {
	t.Helper()
	s, err := Open(Options{Path: t.TempDir(), Retention: 24 * time.Hour, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	appendScrapes(t, s, 0, n)
	return s
}

func TestReadCacheAnswersAsTheStore(t *testing.T) {
	s := scrapedStore(t, 32)
	ctx := context.Background()
	at := t0.Add(8 * time.Minute)
	cache := s.NewReadCache()
	// Every query twice: the second reads what the first put in the cache.
	queries := []string{
		`sum by (instance) (rate(req_total{reason="error"}[1m])) / sum by (instance) (rate(req_total[1m]))`,
		`rate(req_total{reason=~"ok|error", instance!="a:1"}[1m])`,
		`increase(req_total[2m]) or resets(req_total[2m])`,
		`rate(req_total[1m] offset 1m)`,
		`max_over_time(rate(req_total[1m])[3m:15s])`,
		`histogram_quantile(0.9, sum by (instance) (rate(latency_seconds[1m])))`,
		`histogram_sum(rate(latency_seconds[1m])) / histogram_count(rate(latency_seconds[1m]))`,
		`rate(latency_seconds[1m])`,
		`resets(latency_seconds[2m])`,
		`sum(rate(tokens[1m]))`,
		`histogram_count(rate(tokens[1m])) + histogram_sum(rate(tokens[1m]))`,
		`running`,
		`avg_over_time(running[5m])`,
		`last_over_time(running[5m])`,
		`{__name__=~"req_total|running"}`,
		`count_over_time({__name__=~"req_total|running"}[1m])`,
		// Selectors that do not name their metric read the store.
		`rate({__name__=~"latency_seconds"}[1m])`,
		`rate({__name__=~"tokens"}[1m])`,
	}
	for round := range 2 {
		for _, q := range queries {
			want, err := s.Query(ctx, q, at)
			if err != nil {
				t.Fatalf("store: %v", err)
			}
			got, err := cache.Query(ctx, q, at)
			if err != nil {
				t.Fatalf("cache: %v", err)
			}
			if len(want) == 0 {
				t.Fatalf("%s answers nothing: the test reads no samples", q)
			}
			if diff := testutil.VectorDiff(want, got); diff != "" {
				t.Errorf("round %d, %s: %s", round, q, diff)
			}
		}
	}
	if cache.reads.Len() == 0 {
		t.Error("the cache read nothing")
	}
}

func TestReadCacheReadsEachMetricOnce(t *testing.T) {
	s := scrapedStore(t, 32)
	ctx := context.Background()
	at := t0.Add(32 * 15 * time.Second)
	cache := s.NewReadCache()
	const q = `sum(count_over_time(req_total[1m]))`
	before, err := cache.Query(ctx, q, at)
	if err != nil {
		t.Fatal(err)
	}
	// A scrape at the evaluation time, after the first read: the store's
	// answer changes, the cache's does not.
	appendScrapes(t, s, 32, 33)
	after, err := s.Query(ctx, q, at)
	if err != nil {
		t.Fatal(err)
	}
	if testutil.VectorDiff(before, after) == "" {
		t.Fatalf("the scrape at %s changed nothing; the test shows nothing", at)
	}
	again, err := cache.Query(ctx, `sum(count_over_time(req_total{instance=~".+"}[1m]))`, at)
	if err != nil {
		t.Fatal(err)
	}
	if diff := testutil.VectorDiff(before, again); diff != "" {
		t.Errorf("the cache read the metric again: %s", diff)
	}
}

// TestReadCacheKeepsOnlyTheWindow checks that a read keeps the samples of
// its window and no others, of the chunks that cross its edges too.
func TestReadCacheKeepsOnlyTheWindow(t *testing.T) {
	s := scrapedStore(t, 64)
	start := t0.Add(5*time.Minute + 7*time.Second).UnixMilli()
	end := t0.Add(8 * time.Minute).UnixMilli()
	series, err := s.NewReadCache().series(context.Background(), "latency_seconds", &storage.SelectHints{Start: start, End: end, Range: 3 * 60 * 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 3 {
		t.Fatalf("%d series, want 3", len(series))
	}
	for _, cs := range series {
		// Scrapes every 15 s from t0: those at 5m15s to 8m00s.
		if len(cs.samples) != 12 {
			t.Errorf("%s: %d samples, want 12", cs.labels, len(cs.samples))
		}
		for _, smp := range cs.samples {
			if smp.t < start || smp.t > end {
				t.Errorf("%s: a sample at %s, outside the window", cs.labels, time.UnixMilli(smp.t).Sub(t0))
			}
		}
	}
}

func TestReadCacheQueryComputed(t *testing.T) {
	s := scrapedStore(t, 32)
	ctx := context.Background()
	at := t0.Add(8 * time.Minute)
	cache := s.NewReadCache()
	computed := map[string]promql.Vector{}
	for name, sub := range map[string]string{
		"__tokens":  `rate(tokens[1m])`,
		"__latency": `rate(latency_seconds[1m])`,
		"__req":     `rate(req_total[1m])`,
	} {
		v, err := cache.Query(ctx, sub, at)
		if err != nil || len(v) == 0 {
			t.Fatalf("%s = %v, %v", sub, v, err)
		}
		computed[name] = v
	}
	copies := map[string]promql.Vector{}
	for name, v := range computed {
		c := make(promql.Vector, len(v))
		for i, s := range v {
			c[i] = s
			if s.H != nil {
				c[i].H = s.H.Copy()
			}
		}
		copies[name] = c
	}
	for _, tc := range []struct{ reading, written string }{
		{`__tokens`, `rate(tokens[1m])`},
		{`sum(__tokens)`, `sum(rate(tokens[1m]))`},
		// Arithmetic on the histograms read, which must leave them as they were.
		{`__tokens * 2`, `rate(tokens[1m]) * 2`},
		{`histogram_count(__tokens) + histogram_sum(__tokens)`, `histogram_count(rate(tokens[1m])) + histogram_sum(rate(tokens[1m]))`},
		{`histogram_quantile(0.9, sum by (instance) (__latency))`, `histogram_quantile(0.9, sum by (instance) (rate(latency_seconds[1m])))`},
		{`sum by (instance) (__req) / on (instance) (sum by (instance) (running) > 0)`, `sum by (instance) (rate(req_total[1m])) / on (instance) (sum by (instance) (running) > 0)`},
	} {
		want, err := s.Query(ctx, tc.written, at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cache.QueryComputed(ctx, tc.reading, at, computed)
		if err != nil {
			t.Fatalf("%s: %v", tc.reading, err)
		}
		if len(want) == 0 {
			t.Fatalf("%s answers nothing: the test reads no samples", tc.written)
		}
		if diff := testutil.VectorDiff(want, got); diff != "" {
			t.Errorf("%s: %s", tc.reading, diff)
		}
	}
	for name, v := range copies {
		if diff := testutil.VectorDiff(v, computed[name]); diff != "" {
			t.Errorf("%s changed by the queries that read it: %s", name, diff)
		}
	}
}
