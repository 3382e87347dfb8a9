package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	apiv1 "github.com/optiinfra/perfagent/web/api/v1"
)

// historyWindow is how much signal history feeds the ITL fit.
const historyWindow = 30 * time.Minute

// advisor joins the latest snapshot, the firing bottlenecks and signal
// history into the recommender's input, and keeps the latest report.
type advisor struct {
	rec   *recommender.Recommender
	coll  *collector.Collector
	rules *rules.Manager
	store collector.Source
	step  func() time.Duration

	mtx    sync.RWMutex
	latest recommender.Report
}

// Latest is the report of the last pass after a collection.
func (v *advisor) Latest() recommender.Report {
	v.mtx.RLock()
	defer v.mtx.RUnlock()
	return v.latest
}

// LatestRecommendations serves the recommendations collector.
func (v *advisor) LatestRecommendations() []recommender.Recommendation {
	return v.Latest().Recommendations
}

// Update recomputes the recommendations after a collection and rule
// evaluation.
func (v *advisor) Update(ctx context.Context, snap *collector.Snapshot) error {
	rep, err := v.Recommend(ctx, snap.Time, apiv1.RecommendRequest{})
	if err != nil {
		return err
	}
	v.mtx.Lock()
	v.latest = rep
	v.mtx.Unlock()
	return nil
}

// Recommend runs one pass at now over the latest snapshot and the firing
// bottlenecks, narrowed by the request.
func (v *advisor) Recommend(ctx context.Context, now time.Time, req apiv1.RecommendRequest) (recommender.Report, error) {
	snap := v.coll.Latest()
	if snap == nil {
		return recommender.Report{}, fmt.Errorf("no collection has completed yet")
	}
	in := recommender.Input{Objectives: recommender.Objectives{
		TTFTP95Seconds: req.Objectives.TTFTP95Seconds, ITLP95Seconds: req.Objectives.ITLP95Seconds, QueueWaitP95Seconds: req.Objectives.QueueWaitP95Seconds,
	}}
	for _, f := range recommender.Findings(v.rules.Bottlenecks()) {
		if (req.Bottleneck == "" || f.Bottleneck == req.Bottleneck || f.Rule == req.Bottleneck) && (req.Instance == "" || f.Instance == req.Instance) {
			in.Findings = append(in.Findings, f)
		}
	}
	// Replica counts need every instance of a model, not only the
	// requested one.
	in.Instances = slices.Clone(snap.Instances)
	hist, err := recommender.ReadHistory(ctx, v.store, now, historyWindow, v.step())
	if err != nil {
		return recommender.Report{}, err
	}
	in.History = hist
	return v.rec.Analyze(now, in), nil
}
