package main

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/optiinfra/perfagent/internal/instantql"
	"github.com/optiinfra/perfagent/internal/testutil"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/signalstore"
	"github.com/optiinfra/perfagent/simulator"
)

// TestDirectEvaluationAgreesOnScenarios replays scenarios twice, with the
// store answering what it can directly (internal/instantql) and with the
// PromQL engine alone, and compares everything the two stores hold at
// the end, sample for sample and bit for bit: the signals, what the
// recording rules recorded and the alerts' series.
func TestDirectEvaluationAgreesOnScenarios(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("replays scenarios; make test runs it without -race")
	}
	scenarios, err := simulator.Scenarios()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenarios {
		if !slices.Contains([]string{"vllm-b2-queue", "vllm-b8-head-of-line", "sglang-b1-retraction", "tgi-b2-queue", "b6-underused"}, sc.Name) {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			direct, engine := replayStore(t, sc, false), replayStore(t, sc, true)
			got, want := everything(t, direct), everything(t, engine)
			if len(got) != len(want) || len(want) == 0 {
				t.Fatalf("%d series directly, %d with the engine", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				if !labels.Equal(g.labels, w.labels) || !slices.EqualFunc(g.samples, w.samples, sameSample) {
					t.Fatalf("%s: %v\nwith the engine: %s: %v", g.labels, g.samples, w.labels, w.samples)
				}
			}
		})
	}
}

// TestDirectEvaluationAgreesOnRules evaluates every subexpression of the
// built-in rules that is an instant vector, over a replay's history,
// directly and with the engine, and compares the answers bit for bit:
// the alerts' states say only whether a threshold was crossed.
func TestDirectEvaluationAgreesOnRules(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("replays a scenario; make test runs it without -race")
	}
	scenarios, err := simulator.Scenarios()
	if err != nil {
		t.Fatal(err)
	}
	mgr := rules.NewManager(rules.ManagerOptions{})
	if err := mgr.Update(rules.BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	var exprs []parser.Expr
	for _, g := range mgr.RuleGroups() {
		for _, r := range g.Rules() {
			parser.Inspect(r.Query(), func(n parser.Node, _ []parser.Node) error {
				if e, ok := n.(parser.Expr); ok && e.Type() == parser.ValueTypeVector {
					if _, paren := e.(*parser.ParenExpr); !paren {
						exprs = append(exprs, e)
					}
				}
				return nil
			})
		}
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: signalstore.LookbackDelta})
	for _, sc := range scenarios {
		if !slices.Contains([]string{"vllm-b1-kv-ramp", "vllm-b8-head-of-line", "b6-underused"}, sc.Name) {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			store := replayStore(t, sc, false)
			o := defaultOptions("")
			direct, answered := 0, 0
			for off := 10 * time.Minute; off <= time.Duration(sc.Fleet.Duration); off += 4 * o.Interval {
				at := o.Start.Add(off)
				for _, e := range exprs {
					q, err := instantql.Compile(e, signalstore.LookbackDelta)
					if err != nil {
						continue
					}
					got, err := q.Eval(context.Background(), store, at)
					if errors.Is(err, instantql.ErrUnsupported) {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					want, err := promrules.EngineQueryFunc(engine, store)(context.Background(), e.String(), at)
					if err != nil {
						t.Fatalf("%s: %v", e, err)
					}
					direct++
					if len(want) > 0 {
						answered++
					}
					if d := testutil.VectorDiff(want, got); d != "" {
						t.Fatalf("%s at %s: %s", e, off, d)
					}
				}
			}
			t.Logf("%d subexpressions of %d evaluated directly, %d with an answer", direct, len(exprs), answered)
		})
	}
}

// replayStore replays sc and returns its store.
func replayStore(t *testing.T, sc simulator.Scenario, engineOnly bool) storage.Queryable {
	t.Helper()
	o := defaultOptions(t.TempDir())
	o.EngineOnly = engineOnly
	r, err := newReplay(sc, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	for off := time.Duration(0); off <= time.Duration(sc.Fleet.Duration); off += o.Interval {
		if err := r.step(context.Background(), off); err != nil {
			t.Fatal(err)
		}
	}
	return r.store
}

type storedSeries struct {
	labels  labels.Labels
	samples [][2]float64
}

func everything(t *testing.T, q storage.Queryable) []storedSeries {
	t.Helper()
	querier, err := q.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer querier.Close()
	set := querier.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	var out []storedSeries
	var it chunkenc.Iterator
	for set.Next() {
		s := storedSeries{labels: set.At().Labels()}
		it = set.At().Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, f := it.At()
			s.samples = append(s.samples, [2]float64{float64(ts), f})
		}
		out = append(out, s)
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSample(a, b [2]float64) bool {
	return a[0] == b[0] && math.Float64bits(a[1]) == math.Float64bits(b[1])
}
