package signalstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// appendRaw appends one sample a scrape interval for minutes to the raw
// samples, and one to the TSDB at the same times.
func appendRaw(t *testing.T, s *Store, minutes int) {
	t.Helper()
	raw := labels.FromStrings("__name__", "vllm:num_requests_running", "instance", "a:1")
	derived := labels.FromStrings("__name__", "llm_requests_running", "instance", "a:1")
	ctx := context.Background()
	for i := range minutes*4 + 1 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second).UnixMilli()
		rapp := s.RawAppendable().AppenderV2(ctx)
		if _, err := rapp.Append(0, raw, 0, ts, float64(i), nil, nil, storage.AOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := rapp.Commit(); err != nil {
			t.Fatal(err)
		}
		app := s.Appender(ctx)
		if _, err := app.Append(0, derived, ts, float64(i)); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRawSamplesAnswerBesideTheTSDBAndAreTrimmed(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "raw", "chunks_head", "000001")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("from a previous run"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := Open(Options{Path: dir, Retention: 24 * time.Hour, Raw: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a raw chunk file of a previous run is still there: %v", err)
	}
	appendRaw(t, s, 20)
	ctx := context.Background()
	end := t0.Add(20 * time.Minute)

	count := func(expr string, at time.Time) float64 {
		t.Helper()
		v, err := s.Query(ctx, expr, at)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) == 0 {
			return 0
		}
		return v[0].F
	}
	// One query reads both: the engine sees one store.
	if got := count("vllm:num_requests_running - on (instance) llm_requests_running", end); got != 0 {
		t.Errorf("raw minus derived at the end = %g, want 0", got)
	}
	if got := count("count_over_time(vllm:num_requests_running[20m])", end); got != 80 {
		t.Errorf("raw samples over 20m = %g, want 80", got)
	}
	// A selector without a metric name reads both sides.
	if got := count(`count({__name__=~"vllm:num_requests_running|llm_requests_running"})`, end); got != 2 {
		t.Errorf("series of both sides = %g, want 2", got)
	}
	// The TSDB itself holds none of them.
	q, err := s.DB().Querier(t0.UnixMilli(), end.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "vllm:num_requests_running"))
	if ss.Next() {
		t.Errorf("the TSDB holds raw series %s", ss.At().Labels())
	}
	_ = q.Close()
	// A metric on both sides (the agent's own up beside the targets') is
	// read from both.
	app := s.Appender(ctx)
	if _, err := app.Append(0, labels.FromStrings("__name__", "vllm:num_requests_running", "instance", "agent:1"), end.Add(-time.Minute-time.Second).UnixMilli(), 1e6); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := count("count(max_over_time(vllm:num_requests_running[2m]))", end); got != 2 {
		t.Errorf("series of a metric on both sides = %g, want 2", got)
	}

	if err := s.TrimRaw(end.Add(-5 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"perfagent_raw_series":           1,
		"perfagent_raw_min_time_seconds": float64(end.Add(-5 * time.Minute).Unix()),
	} {
		if got := gathered(t, reg, name); got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
	// Whole chunks go: the one that holds the horizon (10m–20m) stays.
	if got := count("count_over_time(vllm:num_requests_running[5m])", end); got != 20 {
		t.Errorf("raw samples of the last 5m after the trim = %g, want all 20", got)
	}
	if got := count("count_over_time(vllm:num_requests_running[5m])", t0.Add(9*time.Minute)); got != 0 {
		t.Errorf("raw samples of 4m–9m after the trim = %g, want none", got)
	}
	if got := count("count_over_time(llm_requests_running[20m])", end); got != 80 {
		t.Errorf("derived samples over 20m after the trim = %g, want all 80", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "raw")); !os.IsNotExist(err) {
		t.Errorf("the raw samples' directory outlives the store: %v", err)
	}
}

// gathered is the value of the one sample of family name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}

func TestWithoutRawScrapedSamplesGoToTheTSDB(t *testing.T) {
	s := openTestStore(t)
	appendRaw(t, s, 1)
	if err := s.TrimRaw(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	v, err := s.Query(context.Background(), "count_over_time(vllm:num_requests_running[1m])", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].F != 4 {
		t.Errorf("raw samples in the TSDB = %v, want 4 kept past TrimRaw", v)
	}
}

// TestReadsDuringTrimsAndChurnNeverFail reads both sides with selectors
// that name no metric, as the instance history does, while samples are
// appended, series come and go and the raw samples are trimmed once a
// cycle, all at once as in the agent: no read may fail.
func TestReadsDuringTrimsAndChurnNeverFail(t *testing.T) {
	s, err := Open(Options{Path: t.TempDir(), Retention: 24 * time.Hour, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const (
		steps    = 600 // 2.5 hours of 15 s scrapes
		series   = 40
		interval = 15 * time.Second
	)
	ctx := context.Background()
	var latest atomic.Int64
	latest.Store(t0.UnixMilli())
	done := make(chan struct{})
	trims := make(chan time.Time, 1)
	// Each goroutine sends at most one error and stops, so sends never
	// block.
	errs := make(chan error, 5)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		defer close(trims)
		for i := range steps {
			ts := t0.Add(time.Duration(i) * interval)
			rapp := s.RawAppendable().AppenderV2(ctx)
			app := s.Appender(ctx)
			for j := range series {
				// Half the series are replaced every ten minutes, so
				// that trims drop whole series as well as chunks.
				gen := 0
				if j%2 == 1 {
					gen = i / 40
				}
				inst := fmt.Sprintf("a:%d-%d", j, gen)
				if _, err := rapp.Append(0, labels.FromStrings("__name__", "vllm:num_requests_running", "instance", inst), 0, ts.UnixMilli(), float64(i), nil, nil, storage.AOptions{}); err != nil {
					errs <- err
					return
				}
				if _, err := app.Append(0, labels.FromStrings("__name__", "llm_requests_running", "instance", inst), ts.UnixMilli(), float64(i)); err != nil {
					errs <- err
					return
				}
			}
			if err := rapp.Commit(); err != nil {
				errs <- err
				return
			}
			if err := app.Commit(); err != nil {
				errs <- err
				return
			}
			latest.Store(ts.UnixMilli())
			if i%4 == 3 {
				select {
				case trims <- ts.Add(-5*time.Minute - 30*time.Second):
				default:
				}
			}
		}
	})
	wg.Go(func() {
		for before := range trims {
			if err := s.TrimRaw(before); err != nil {
				errs <- err
				return
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				end := time.UnixMilli(latest.Load())
				if _, err := s.QueryRange(ctx, `{__name__=~"vllm:.+|llm_.+", instance=~"a:.*"}`, end.Add(-15*time.Minute), end, interval); err != nil {
					errs <- err
					return
				}
				if _, err := s.Query(ctx, `count_over_time({__name__=~"vllm:.+"}[6m])`, end); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
