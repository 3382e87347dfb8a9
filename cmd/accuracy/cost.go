package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/cost"
	"github.com/optiinfra/perfagent/recommender"
)

// loopAccelerator is priced at one unit per GPU-hour: the closed loop
// compares costs per million tokens relatively, and a relative error does
// not depend on the price.
const loopAccelerator = "simulated"

// CostResult compares the cost per million tokens (prompt and generated
// together) that a recommendation predicted with the one measured after it.
type CostResult struct {
	Predicted float64 `json:"predicted_per_million_tokens"`
	Before    float64 `json:"before_per_million_tokens"`
	After     float64 `json:"after_per_million_tokens"`
	// Error is |after − predicted| / predicted.
	Error float64 `json:"error"`
}

// priceLoop makes the replay's pipeline price every simulated GPU, so
// that recommendations carry their cost change.
func priceLoop(r *replay) error {
	cfg := r.cfg
	cfg.Cost = config.DefaultCostConfig()
	cfg.Cost.GPUHourPrices = map[string]float64{loopAccelerator: 1}
	cfg.Cost.DefaultAccelerator = loopAccelerator
	return r.pipe.ApplyConfig(agent.Config{Interval: r.o.Interval, Pricing: cost.NewPricing(&cfg)})
}

// costBefore is the hour's cost and the mean token rate, over the
// averaging window before off, of the instances rec changes.
type costBefore struct {
	perHour, tokens float64
}

// pool is the instances a recommendation changes.
func pool(rec *recommender.Recommendation, instance string) []string {
	if rec.Action.Kind == recommender.KindReplicas {
		return rec.Action.Instances
	}
	return []string{instance}
}

// tokenRate is the mean prompt and generated tokens per second of the
// instances over the averaging window before off.
func (r *replay) tokenRate(ctx context.Context, instances []string, off time.Duration) (float64, error) {
	var sum float64
	for _, in := range instances {
		for _, s := range []string{cost.PromptTokensPerSecond, cost.GenerationTokensPerSecond} {
			v, err := r.average(ctx, recommender.Effect{Signal: s}, in, off)
			if err != nil {
				return 0, err
			}
			sum += v
		}
	}
	return sum, nil
}

// measureCostBefore reads the pool's cost and token rate when rec is
// applied; ok is false when the recommendation carries no cost per
// million tokens to check.
func (r *replay) measureCostBefore(ctx context.Context, rec *recommender.Recommendation, instance string, off time.Duration) (costBefore, bool, error) {
	if rec.Cost == nil || rec.Cost.PerMillionTokens == nil {
		return costBefore{}, false, nil
	}
	tokens, err := r.tokenRate(ctx, pool(rec, instance), off)
	return costBefore{perHour: rec.Cost.PerHour.Current, tokens: tokens}, err == nil && tokens > 0, err
}

// measureCostAfter compares the predicted cost per million tokens with the
// one measured at off. A replica change is simulated by giving each
// existing server its share of the load (ClosedLoop), so the pool's
// tokens after are the servers' tokens scaled by To / From.
func (r *replay) measureCostAfter(ctx context.Context, rec *recommender.Recommendation, instance string, before costBefore, off time.Duration) (*CostResult, error) {
	tokens, err := r.tokenRate(ctx, pool(rec, instance), off)
	if err != nil {
		return nil, err
	}
	perHour := before.perHour
	if a := rec.Action; a.Kind == recommender.KindReplicas && a.From > 0 {
		tokens *= float64(a.To) / float64(a.From)
		perHour *= float64(a.To) / float64(a.From)
	}
	// A tensor-parallel change holds more GPUs from now on.
	perHour *= cost.GPUScale(rec.Action)
	res := &CostResult{Predicted: rec.Cost.PerMillionTokens.Estimate, Before: perMillion(before.perHour, before.tokens), After: perMillion(perHour, tokens)}
	res.Error = math.Abs(res.After-res.Predicted) / res.Predicted
	return res, nil
}

func perMillion(perHour, tokens float64) float64 {
	if p := cost.PerMillion(perHour, tokens); p != nil {
		return *p
	}
	return math.Inf(1)
}

// writeLoopCostTable prints the predicted and measured cost per million
// tokens of every scenario whose applied recommendation had one, and
// returns their median relative error (NaN without any).
func writeLoopCostTable(w io.Writer, results []*LoopResult) float64 {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tAPPLIED\tCOST/MTOK BEFORE\tPREDICTED\tAFTER\tERROR")
	var errs []float64
	for _, r := range results {
		if r.Cost == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\t%.4g\t%.2f\n", r.Scenario, r.Applied.ID, r.Cost.Before, r.Cost.Predicted, r.Cost.After, r.Cost.Error)
		errs = append(errs, r.Cost.Error)
	}
	_ = tw.Flush()
	return median(errs)
}
