package cost

import (
	"fmt"
	"sort"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/recommender"
)

// Annotate sets the expected cost change of every recommendation whose
// instances are all priced in costs. A replica change adds or removes
// replicas at the pool's mean cost per replica and serves the same tokens;
// a tensor-parallel change multiplies the GPUs (GPUScale); any other
// change keeps the GPUs, so the hour's cost, and the tokens
// (their change is not estimated), so the cost per million tokens. The
// hour's cost is split between prompt and generated tokens as the
// instances' own costs are, by prompt_token_weight.
func (p *Pricing) Annotate(recs []recommender.Recommendation, costs []Instance) {
	if p == nil {
		return
	}
	by := make(map[string]Instance, len(costs))
	for _, c := range costs {
		by[c.Instance] = c
	}
	for i, r := range recs {
		recs[i].Cost = p.change(r, by)
	}
}

func (p *Pricing) change(r recommender.Recommendation, by map[string]Instance) *recommender.CostChange {
	names := r.Action.Instances
	if r.Action.Kind != recommender.KindReplicas {
		names = []string{r.Instance}
	}
	if len(names) == 0 {
		return nil
	}
	var perHour, prompt, generation float64
	for _, n := range names {
		c, ok := by[n]
		if !ok {
			return nil
		}
		perHour += c.PerHour
		prompt += c.PromptTokensPerSecond
		generation += c.GenerationTokensPerSecond
	}
	tokens := prompt + generation
	after := perHour
	basis := "the change keeps the instance's GPUs, so its hour costs the same; its effect on the token rate is not estimated, so the cost per million tokens is kept"
	if r.Action.Kind == recommender.KindReplicas && r.Action.From > 0 {
		after = perHour / float64(r.Action.From) * float64(r.Action.To)
		basis = fmt.Sprintf("%d → %d replicas at the pool's mean %s %s per replica-hour, serving the same %s prompt and %s generated tokens/s", r.Action.From, r.Action.To, num(perHour/float64(r.Action.From)), p.currency, num(prompt), num(generation))
	}
	if f := GPUScale(r.Action); f != 1 {
		after = perHour * f
		basis = fmt.Sprintf("%s %s → %s shards the model over that many GPUs, so the hour costs × %s; its effect on the token rate is not estimated", r.Action.Setting, r.Action.Current, r.Action.Proposed, num(f))
	}
	cc := &recommender.CostChange{Currency: p.currency, PerHour: estimate(perHour, after), Basis: basis}
	cc.PerMillionTokens = estimateOf(PerMillion(perHour, tokens), PerMillion(after, tokens))
	promptNow, genNow := Split(perHour, prompt, generation, p.promptWeight)
	promptAfter, genAfter := Split(after, prompt, generation, p.promptWeight)
	cc.PromptPerMillionTokens = estimateOf(promptNow, promptAfter)
	cc.GenerationPerMillionTokens = estimateOf(genNow, genAfter)
	return cc
}

// estimateOf is the estimate from now to after, nil when either is
// absent.
func estimateOf(now, after *float64) *recommender.CostEstimate {
	if now == nil || after == nil {
		return nil
	}
	e := estimate(*now, *after)
	return &e
}

func estimate(now, after float64) recommender.CostEstimate {
	return recommender.CostEstimate{Current: round(now), Estimate: round(after), Change: round(after - now)}
}

// Rank orders recs for a preference and renumbers their ranks. Cost puts
// the largest saving per hour first, then the changes that keep the cost,
// then those that raise it, each group in its triage order; a
// recommendation without a price counts as keeping the cost. Latency, or
// no preference, keeps the triage order.
func Rank(recs []recommender.Recommendation, prefer string) {
	if prefer != config.PreferCost {
		return
	}
	sort.SliceStable(recs, func(i, j int) bool { return saving(recs[i]) > saving(recs[j]) })
	for i := range recs {
		recs[i].Rank = i + 1
	}
}

func saving(r recommender.Recommendation) float64 {
	if r.Cost == nil {
		return 0
	}
	return -r.Cost.PerHour.Change
}
