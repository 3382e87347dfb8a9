package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/common/model"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/simulator"
)

// Closed-loop clocks: how long the changed server runs before it is
// judged, and the window its signals are averaged over before and after.
// The settle time is longer than the longest window a short-term rule
// reads (15 minutes for B1, B10 and B12) plus the 1m rate window and the
// restart's own transient: judged at 15 minutes, a bottleneck "still
// fires" only because its window still holds the minutes before the change.
const (
	settleTime    = 20 * time.Minute
	averageWindow = 5 * time.Minute
)

// EffectResult compares one predicted effect with what the simulator did.
type EffectResult struct {
	recommender.Effect
	Before float64 `json:"before"`
	After  float64 `json:"after"`
	// Moved is true when the signal changed in the predicted direction.
	Moved bool `json:"moved"`
	// Error is |measured change − predicted change| / |predicted change|,
	// for effects with an estimate.
	Error *float64 `json:"error,omitempty"`
}

// LoopResult is the closed loop of one scenario: the top recommendation
// for its first injected bottleneck (or the lever that truth names),
// applied to the simulated server, and what followed.
type LoopResult struct {
	Scenario   string                      `json:"scenario"`
	Bottleneck string                      `json:"bottleneck"`
	Instance   string                      `json:"instance"`
	Applied    *recommender.Recommendation `json:"applied,omitempty"`
	AppliedAt  time.Duration               `json:"applied_at"`
	// Lever is the recommendation the scenario's truth named to apply
	// instead of the top-ranked one, with how a manual one was carried out.
	Lever *simulator.Lever `json:"lever,omitempty"`
	// Reason says why nothing was applied.
	Reason   string         `json:"reason,omitempty"`
	Cleared  bool           `json:"cleared"`
	Effects  []EffectResult `json:"effects"`
	Improved bool           `json:"improved"`
	// Cost is the predicted and measured cost per million tokens, when
	// the recommendation predicted one (cost.go).
	Cost *CostResult `json:"cost,omitempty"`
}

// ClosedLoop replays a scenario until its first truth bottleneck fires,
// applies the top recommendation for that instance (or the truth's lever)
// through the simulated server's control path (flags as a restart with new
// flags; replica changes as the arrival rate divided among the new replica
// count), runs on, and measures the targeted signals against the
// prediction.
func ClosedLoop(ctx context.Context, sc simulator.Scenario, o Options) (*LoopResult, error) {
	if len(sc.Fleet.Truth) == 0 {
		return nil, nil
	}
	cfg := config.DefaultRecommenderConfig()
	cfg.Models = modelConfigs(sc)
	rec, err := recommender.New(recommender.Options{Config: &cfg})
	if err != nil {
		return nil, err
	}
	r, err := newReplay(sc, o, rec)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := priceLoop(r); err != nil {
		return nil, err
	}
	truth := sc.Fleet.Truth[0]
	res := &LoopResult{Scenario: sc.Name, Bottleneck: truth.Bottleneck, Lever: truth.Lever}
	for listen, s := range r.servers {
		if s.Name() == truth.Server {
			res.Instance = listen
		}
	}
	end := time.Duration(sc.Fleet.Duration)
	var costAt costBefore
	priced := false
	for off := time.Duration(0); off <= end; off += o.Interval {
		if err := r.step(ctx, off); err != nil {
			return nil, err
		}
		if res.Applied != nil || !firing(r.pipe.Bottlenecks(), truth.Bottleneck, res.Instance) {
			continue
		}
		top := chosenRecommendation(r.pipe.Latest(), res.Instance, truth.Lever)
		if top == nil {
			continue
		}
		res.Applied, res.AppliedAt = top, off
		for _, e := range top.Effects {
			before, err := r.average(ctx, e, res.Instance, off)
			if err != nil {
				return nil, err
			}
			res.Effects = append(res.Effects, EffectResult{Effect: e, Before: before})
		}
		if costAt, priced, err = r.measureCostBefore(ctx, top, res.Instance, off); err != nil {
			return nil, err
		}
		if err := r.apply(top, res.Instance, truth.Lever); err != nil {
			res.Reason = err.Error()
			return res, nil
		}
		if err := r.applyFacts(); err != nil {
			return nil, err
		}
		end = max(end, off+settleTime)
	}
	if res.Applied == nil {
		res.Reason = fmt.Sprintf("%s never fired on %s with a recommendation", truth.Bottleneck, res.Instance)
		if truth.Lever != nil {
			res.Reason = fmt.Sprintf("%s never fired on %s with recommendation %s", truth.Bottleneck, res.Instance, truth.Lever.ID)
		}
		return res, nil
	}
	res.Cleared = !firing(r.pipe.Bottlenecks(), truth.Bottleneck, res.Instance)
	for i := range res.Effects {
		e := &res.Effects[i]
		after, err := r.average(ctx, e.Effect, res.Instance, end)
		if err != nil {
			return nil, err
		}
		e.After = after
		switch e.Direction {
		case recommender.Increase:
			e.Moved = e.After > e.Before
		case recommender.Decrease:
			e.Moved = e.After < e.Before || (e.Before == 0 && e.After == 0)
		}
		if e.Estimate != nil {
			predicted, measured := *e.Estimate-e.Before, e.After-e.Before
			var rel float64
			if predicted != 0 {
				rel = math.Abs(measured-predicted) / math.Abs(predicted)
			} else {
				rel = math.Abs(e.After-*e.Estimate) / math.Max(math.Abs(e.Before), 1e-9)
			}
			e.Error = &rel
		}
	}
	res.Improved = res.Cleared && len(res.Effects) > 0 && res.Effects[0].Moved
	if priced {
		if res.Cost, err = r.measureCostAfter(ctx, res.Applied, res.Instance, costAt, end); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// firing reports whether bottleneck id is present on instance: a rule
// that detects it fires (a forecast of it does not count).
func firing(bs []rules.Bottleneck, id, instance string) bool {
	for _, b := range bs {
		if b.ID == id && b.Instance == instance && b.State == rules.StateFiring && b.Forecast() == "" {
			return true
		}
	}
	return false
}

// chosenRecommendation is the best-ranked recommendation of the cycle's
// report that concerns the instance, or, when the scenario names a lever,
// the best-ranked one of that id.
func chosenRecommendation(rep recommender.Report, instance string, lever *simulator.Lever) *recommender.Recommendation {
	for _, x := range rep.Recommendations {
		if lever != nil && x.ID != lever.ID {
			continue
		}
		if x.Instance == instance || slices.Contains(x.Action.Instances, instance) {
			return &x
		}
	}
	return nil
}

// modelConfigs give the recommender each served model's shape, GPU type
// (the simulator's gpu.name, which says whether it has FP8 tensor cores)
// and tensor-parallel size, as
// the recommender section of an operator's configuration does
// (docs/recommendations.md, Configuration): without them the memory
// recommendations (raise_gpu_memory_utilization, raise_mem_fraction_static)
// cannot size anything and the ranking falls through to a later action.
// Servers of one model name are assumed to share a GPU type (true of the
// library; the recommender keys shapes by model); the last one described
// counts.
func modelConfigs(sc simulator.Scenario) []config.ModelConfig {
	var out []config.ModelConfig
	at := map[string]int{}
	for _, s := range sc.Fleet.Servers {
		m := s.Model
		if m.Name == "" || m.Layers == 0 || s.GPU.MemoryGiB == 0 {
			continue
		}
		mc := config.ModelConfig{Name: m.Name, Parameters: m.ParametersB * 1e9, Layers: m.Layers, KVHeads: m.KVHeads, HeadDim: m.HeadDim,
			DTypeBytes: m.DtypeBytes, GPUMemoryBytes: s.GPU.MemoryGiB * (1 << 30), GPU: s.GPU.Name,
			TensorParallelSize: s.Settings.TensorParallelSize}
		if i, ok := at[m.Name]; ok {
			out[i] = mc
			continue
		}
		at[m.Name] = len(out)
		out = append(out, mc)
	}
	return out
}

// average is the mean of an effect's signal on the instance over the
// window before off.
func (r *replay) average(ctx context.Context, e recommender.Effect, instance string, off time.Duration) (float64, error) {
	sel := fmt.Sprintf(`%s{instance=%q`, e.Signal, instance)
	if e.Quantile != "" {
		sel += fmt.Sprintf(`,quantile=%q`, e.Quantile)
	}
	sel += "}"
	v, err := r.store.Query(ctx, fmt.Sprintf("avg_over_time(%s[%s])", sel, model.Duration(averageWindow)), r.o.Start.Add(off))
	if err != nil {
		return 0, err
	}
	if len(v) == 0 {
		// A rate signal with nothing to count is absent, and means zero.
		return 0, nil
	}
	return v[0].F, nil
}

// apply changes the simulated server as the recommendation says: a flag
// through the server's own flag path, as the webhook executor changes it;
// a manual action through the flag and value the scenario's lever names
// for it.
func (r *replay) apply(rec *recommender.Recommendation, instance string, lever *simulator.Lever) error {
	s := r.servers[instance]
	switch rec.Action.Kind {
	case recommender.KindFlag:
		return s.ApplyFlag(rec.Action.Flag, rec.Action.Proposed)
	case recommender.KindReplicas:
		if rec.Action.From <= 0 || rec.Action.To <= 0 {
			return fmt.Errorf("replica change %d → %d cannot be simulated", rec.Action.From, rec.Action.To)
		}
		// More replicas behind the balancer: each gets its share.
		for _, inst := range rec.Action.Instances {
			srv := r.servers[inst]
			rate := srv.State().Workload.Rate * float64(rec.Action.From) / float64(rec.Action.To)
			if err := srv.UpdateWorkload([]byte(fmt.Sprintf(`{"rate": %g}`, rate))); err != nil {
				return err
			}
		}
		return nil
	default:
		if lever != nil && lever.ID == rec.ID && lever.Flag != "" {
			return s.ApplyFlag(lever.Flag, lever.Value)
		}
		return fmt.Errorf("%s is a manual action (%s); the simulator cannot apply it unless the scenario's truth names it as its lever with a flag", rec.ID, rec.Action.Note)
	}
}

// LoopSummary is the closed-loop outcome over the library.
type LoopSummary struct {
	Scenarios   int     `json:"scenarios"`
	Improved    int     `json:"improved"`
	MedianError float64 `json:"median_error"`
	// Effects are the errors by effect type: the overall median is
	// dominated by effects that are exact by construction (capacities,
	// predicted zeros), and hides estimates that are far off.
	Effects []EffectSummary `json:"effects"`
}

// EffectSummary is the error of one effect type (a signal and quantile)
// over the effects with an estimate.
type EffectSummary struct {
	Effect string  `json:"effect"`
	Count  int     `json:"count"`
	Median float64 `json:"median_error"`
	Worst  float64 `json:"worst_error"`
}

func summarizeLoops(results []*LoopResult) LoopSummary {
	var s LoopSummary
	var errs []float64
	byEffect := map[string][]float64{}
	for _, r := range results {
		s.Scenarios++
		if r.Improved {
			s.Improved++
		}
		for _, e := range r.Effects {
			if e.Error != nil {
				errs = append(errs, *e.Error)
				byEffect[effectName(e.Effect)] = append(byEffect[effectName(e.Effect)], *e.Error)
			}
		}
	}
	s.MedianError = median(errs)
	for name, es := range byEffect {
		s.Effects = append(s.Effects, EffectSummary{Effect: name, Count: len(es), Median: median(es), Worst: slices.Max(es)})
	}
	sort.Slice(s.Effects, func(i, j int) bool { return s.Effects[i].Effect < s.Effects[j].Effect })
	return s
}

// effectName is the signal of an effect with its quantile, as PromQL
// writes a selector: llm_queue_time_seconds{quantile="0.95"}.
func effectName(e recommender.Effect) string {
	if e.Quantile == "" {
		return e.Signal
	}
	return fmt.Sprintf("%s{quantile=%q}", e.Signal, e.Quantile)
}

// median is NaN for no values.
func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	sort.Float64s(xs)
	switch n := len(xs); {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return xs[n/2]
	default:
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}
