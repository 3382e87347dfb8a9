package rules

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

// t0 is the start of simulated time in tests.
var t0 = time.Unix(1_750_000_000, 0).UTC()

func openStore(t testing.TB, dir string) *signalstore.Store {
	t.Helper()
	s, err := signalstore.Open(signalstore.Options{Path: dir, Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// signal is one signal series of a model server.
func signal(name, instance, engine, mdl string) labels.Labels {
	return labels.FromStrings(model.MetricNameLabel, name, signals.LabelInstance, instance, signals.LabelEngine, engine, signals.LabelModel, mdl)
}

// point is one sample of a series.
type point struct {
	l labels.Labels
	v float64
}

// appendAt appends points at ts in one transaction, with the default SLO
// targets, as a collection cycle does.
func appendAt(t testing.TB, s *signalstore.Store, ts time.Time, points ...point) {
	t.Helper()
	app := s.Appender(context.Background())
	for _, p := range points {
		if _, err := app.Append(0, p.l, ts.UnixMilli(), p.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := AppendSLOTargets(app, ts.UnixMilli(), nil); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func query(t *testing.T, s *signalstore.Store, expr string, ts time.Time) promql.Vector {
	t.Helper()
	v, err := s.Query(context.Background(), expr, ts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tempRuleFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yml")
	writeFile(t, p, content)
	return p
}
