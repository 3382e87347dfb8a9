package rules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// DetectOptions narrow a detection.
type DetectOptions struct {
	// Instances keeps the bottlenecks of these instances; empty keeps all.
	Instances []string
	// Rules keeps the bottlenecks of these alert names; empty keeps all.
	Rules []string
	// Models, the models of Instances, narrows the evaluation to the
	// series of these models and those without a model label (the
	// default SLO targets), so that its cost is that of the instances and
	// their peers rather than of the fleet. It is used when the manager
	// has an Engine and no loaded rule mixes the series of several models
	// (the built-in rules compare an instance with the other replicas of
	// its model only): the instances' bottlenecks are then those of an
	// evaluation over the whole fleet. Otherwise the fleet is evaluated.
	Models []string
}

// ErrUnknownRule is returned when DetectOptions names a rule that is not
// loaded.
var ErrUnknownRule = errors.New("no such rule")

// Detect evaluates the loaded rules at `at` — now or in the past — on a
// private copy of their state, and returns what is active then. To let
// `for` clauses elapse it evaluates from the longest `for` (and
// `keep_firing_for`) before `at`, an evaluation interval apart, or a
// hundredth of that span when the interval is shorter. It changes neither
// the live alert state nor the store, and sends nothing.
func (m *Manager) Detect(ctx context.Context, at time.Time, o DetectOptions) ([]Bottleneck, error) {
	if !m.evaluating {
		return nil, errors.New("bottleneck rules have no storage to read")
	}
	m.mtx.Lock()
	files := m.files
	m.mtx.Unlock()
	known := map[string]bool{}
	for _, n := range Names(files) {
		known[n] = true
	}
	for _, n := range o.Rules {
		if !known[n] {
			return nil, fmt.Errorf("%w %q", ErrUnknownRule, n)
		}
	}
	opts := *m.promOpts
	if len(o.Models) > 0 && len(o.Instances) > 0 && m.engine != nil && modelLocalFiles(files) {
		q, err := narrowToModels(opts.Queryable, o.Models)
		if err != nil {
			return nil, fmt.Errorf("narrowing to models %q: %w", o.Models, err)
		}
		opts.Queryable = q
		opts.QueryFunc = shortCircuit(promrules.EngineQueryFunc(m.engine, q))
	}
	opts.AppendableV2 = discardAppendable{}
	opts.NotifyFunc = func(context.Context, string, ...*promrules.Alert) {}
	opts.Metrics = promrules.NewGroupMetrics(nil)
	groups, static, err := buildGroups(files, m.interval, &opts, true, labels.EmptyLabels(), m.extURL, m.logger)
	if err != nil {
		return nil, err
	}
	var lookback time.Duration
	for _, g := range groups {
		for _, ar := range g.AlertingRules() {
			lookback = max(lookback, ar.HoldDuration()+ar.KeepFiringFor())
		}
	}
	// At most about a hundred evaluations, however short the interval.
	step := max(m.interval, lookback/100)
	for t := at.Add(-lookback); !t.After(at); t = t.Add(step) {
		for _, g := range groups {
			g.Eval(ctx, t)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	var out []Bottleneck
	for _, b := range m.collect(ctx, at, groups, static, evidenceSources{}) {
		if (len(o.Instances) == 0 || slices.Contains(o.Instances, b.Instance)) && (len(o.Rules) == 0 || slices.Contains(o.Rules, b.Rule)) {
			out = append(out, b)
		}
	}
	return out, nil
}

// discardAppendable takes what the private groups of Detect record
// (ALERTS, ALERTS_FOR_STATE) and keeps none of it.
type discardAppendable struct{}

func (discardAppendable) AppenderV2(context.Context) storage.AppenderV2 { return discardAppender{} }

type discardAppender struct{}

func (discardAppender) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AppendV2Options) (storage.SeriesRef, error) {
	return 0, nil
}

func (discardAppender) Commit() error { return nil }

func (discardAppender) Rollback() error { return nil }
