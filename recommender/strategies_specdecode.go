package recommender

import (
	"fmt"
	"math"
	"strings"

	"github.com/optiinfra/perfagent/signals"
)

// Speculative decoding (B11). A verify step of k draft tokens emits, per
// sequence, E(k) = (1 − α^(k+1)) / (1 − α) tokens on average, α being the
// chance that one draft token is accepted. Its cost relative to a plain
// decode step is r(k) = max(1, b(k+1)/ridge) / max(1, b/ridge) + d·k: the
// verify pass computes k + 1 tokens for each of the b running sequences
// and stays memory-bound (as cheap as a plain step) below the GPU's ridge
// point, and each draft token costs a share d of a step. ITL scales with
// r(k)/E(k); the strategy picks the k that minimizes it.
const (
	// specRidgeTokens is the tokens per step below which a 16-bit decode
	// step is memory-bound on current data-centre GPUs (heuristic: peak
	// FLOP/s over bandwidth, about 300 FLOP per byte at 2 bytes a weight).
	specRidgeTokens = 256.0
	// specDraftShare is the cost of one draft token as a share of a plain
	// step with a draft model about a tenth of the target's size
	// (heuristic); n-gram drafting is a host-side lookup.
	specDraftShare      = 0.1
	specNgramDraftShare = 0.01
)

// specTokens is E(k) for acceptance probability alpha.
func specTokens(alpha float64, k int) float64 {
	if k <= 0 {
		return 1
	}
	return (1 - math.Pow(alpha, float64(k+1))) / (1 - alpha)
}

// specCost is r(k) for a running batch of batch sequences.
func specCost(k int, batch, draftShare float64) float64 {
	if k <= 0 {
		return 1
	}
	return math.Max(1, batch*float64(k+1)/specRidgeTokens)/math.Max(1, batch/specRidgeTokens) + draftShare*float64(k)
}

// specAlpha solves E(k) = length for α by bisection (E grows with α).
func specAlpha(length float64, k int) float64 {
	lo, hi := 0.0, 1.0
	for range 60 {
		mid := (lo + hi) / 2
		if specTokens(mid, k) < length {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// speculativeTokens sizes lower_num_speculative_tokens and
// disable_speculative_decoding: the k of 0..current with the least cost per
// emitted token, with the ITL p95 it predicts.
func speculativeTokens(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, ok := b.number(t.action.Setting, t.action.Default)
	if !ok {
		return Recommendation{}, skipf("needs %s of %s (instances[].settings)", t.action.Setting, t.inst.Instance)
	}
	k := int(cur)
	if k <= 0 {
		return Recommendation{}, skipf("speculative decoding is off (%s=%s)", t.action.Setting, fmtNum(cur))
	}
	length, ok := b.signal(signals.SpecDecodeAcceptanceLength, "")
	if !ok {
		ratio, rok := b.signal(signals.SpecDecodeAcceptanceRatio, "")
		if !rok {
			return Recommendation{}, skipf("needs %s or %s", signals.SpecDecodeAcceptanceLength, signals.SpecDecodeAcceptanceRatio)
		}
		length = 1 + ratio*float64(k)
	}
	batch, ok := b.signal(sigRunning, "")
	if !ok {
		return Recommendation{}, skipf("needs %s", sigRunning)
	}
	draft, method := specDraftShare, "a draft model"
	if m, ok := b.settingOf(t.inst, "speculative_method", ""); ok && strings.Contains(strings.ToLower(m), "ngram") {
		draft, method = specNgramDraftShare, "n-gram drafting"
	}
	alpha := specAlpha(length, k)
	score := func(n int) float64 { return specCost(n, batch, draft) / specTokens(alpha, n) }
	// The best k of 0..current: lower proposes it when it is 1 or more,
	// disable when it is 0, so one pass proposes at most one of the two.
	best := 0
	for n := 1; n <= k; n++ {
		if score(n) < score(best) {
			best = n
		}
	}
	switch {
	case best == k:
		return Recommendation{}, skipf("speculation at k=%d already has the least cost per token (α %.2f, batch %s): %.3f of a plain step", k, alpha, fmtNum(batch), score(k))
	case t.action.Direction == DirectionLower && best == 0:
		return Recommendation{}, skipf("no k from 1 to %d costs less per token than no speculation (α %.2f, batch %s): see disable_speculative_decoding", k-1, alpha, fmtNum(batch))
	case t.action.Direction != DirectionLower && best > 0:
		return Recommendation{}, skipf("k=%d costs less per token than no speculation (α %.2f, batch %s): see lower_num_speculative_tokens", best, alpha, fmtNum(batch))
	}
	b.flag(fmtNum(cur), fmtNum(float64(best)))
	b.factor("method", 0.6, "expected tokens per step from the measured acceptance; step cost from a roofline heuristic")
	gain := score(best) / score(k)
	if v, ok := b.signal(sigITL, p95); ok {
		b.effect(sigITL, p95, Decrease, ptr(v), ptr(round(v*gain, 6)))
	} else {
		b.effect(sigITL, p95, Decrease, nil, nil)
	}
	return b.done(fmt.Sprintf("mean acceptance length %.2f at k=%d gives α = %.2f; with a batch of %s and %s, cost per token relative to a plain step is %.3f at k=%d and %.3f at k=%d, so ITL p95 scales by %.2f.",
		length, k, alpha, fmtNum(batch), method, score(k), k, score(best), best, gain)), nil
}
