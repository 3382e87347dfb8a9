package collector

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"

	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

// t0 is the fixed start of simulated time in tests.
var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func openTestStore(t testing.TB) *signalstore.Store {
	t.Helper()
	return openStore(t, signalstore.Options{})
}

// openStore opens a store with opts in a directory of t's, keeping a
// day of history.
func openStore(t testing.TB, opts signalstore.Options) *signalstore.Store {
	t.Helper()
	opts.Path, opts.Retention = t.TempDir(), 24*time.Hour
	s, err := signalstore.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// scrapeText appends a text exposition to the store as a scrape of
// instance at ts would.
func scrapeText(t testing.TB, s *signalstore.Store, instance string, ts time.Time, text string) {
	t.Helper()
	app := s.Appender(context.Background())
	if err := AppendExposition(app, []byte(text), ts, labels.FromStrings("instance", instance, "job", "test")); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// markStale appends staleness markers for the given series of instance.
func markStale(t testing.TB, s *signalstore.Store, instance string, ts time.Time, names ...string) {
	t.Helper()
	app := s.Appender(context.Background())
	for _, n := range names {
		l, err := parseSeries(n)
		if err != nil {
			t.Fatal(err)
		}
		b := labels.NewBuilder(l)
		b.Set("instance", instance)
		b.Set("job", "test")
		if _, err := app.Append(0, b.Labels(), ts.UnixMilli(), math.Float64frombits(value.StaleNaN)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func parseSeries(s string) (labels.Labels, error) {
	p := textparse.NewPromParser([]byte(s+" 0\n"), labels.NewSymbolTable(), false)
	if _, err := p.Next(); err != nil {
		return labels.EmptyLabels(), err
	}
	var l labels.Labels
	p.Labels(&l)
	return l, nil
}

func testMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }

func mustProfile(t testing.TB, file, content string) *Profile {
	t.Helper()
	p, errs := ParseProfile(file, []byte(content))
	if len(errs) > 0 {
		t.Fatalf("parsing %s: %v", file, errs)
	}
	return p
}

// signalValue finds one signal of a snapshot by name, instance and
// quantile.
func signalValue(snap *Snapshot, name, instance, quantile string) (float64, bool) {
	for _, s := range snap.Samples {
		if s.Labels.Get(model.MetricNameLabel) == name && s.Labels.Get(signals.LabelInstance) == instance && s.Labels.Get(signals.LabelQuantile) == quantile {
			return s.Value, true
		}
	}
	return 0, false
}
