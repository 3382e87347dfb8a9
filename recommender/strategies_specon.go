package recommender

import (
	"fmt"

	"github.com/optiinfra/perfagent/signals"
)

// Turning speculative decoding on (B5 at low load). A decode step of a
// small batch reads every weight to compute a few tokens, so the GPU has
// compute to spare: verifying k n-gram drafts per sequence costs about what
// a plain step does and emits E(k) tokens (strategies_specdecode.go for
// E, the step cost and the ridge point). With the drafter off there is no
// measured acceptance, so E(k) is taken at an assumed one; the best k
// minimizes cost per emitted token over 1..specMaxTokens.
const (
	// specAssumedAcceptance is the per-token acceptance assumed for n-gram
	// drafting before it runs (heuristic: prompts whose text the output
	// partly repeats, as in summarizing, extraction or code edits; chat
	// accepts less, which B11 then reports).
	specAssumedAcceptance = 0.5
	// specMaxTokens bounds the proposed draft count (heuristic: beyond 5
	// drafts a step gains under 2 % at the assumed acceptance).
	specMaxTokens = 5
	// specMaxBatch is the running batch above which turning drafts on is
	// not proposed (heuristic): below it, a verify step of specMaxTokens+1
	// tokens per sequence stays under half the ridge point, so load can
	// double before the drafts turn the step compute-bound and cost
	// throughput.
	specMaxBatch = 16
	// specMinGain is the largest ITL ratio worth a restart (heuristic).
	specMinGain = 0.9
)

// specFlags is the full command-line change per engine for n-gram drafting
// of k tokens.
func specFlags(engine string, k int) string {
	switch engine {
	case signals.EngineVLLM:
		return fmt.Sprintf(`--speculative-config '{"method": "ngram", "num_speculative_tokens": %d, "prompt_lookup_max": 4}'`, k)
	case signals.EngineSGLang:
		return fmt.Sprintf("--speculative-algorithm NGRAM --speculative-num-draft-tokens %d", k)
	case signals.EngineTGI:
		return fmt.Sprintf("--speculate %d (n-gram drafting unless the model ships Medusa heads)", k)
	}
	return ""
}

// enableSpeculative sizes enable_speculative_decoding: the draft count k
// with the least cost per emitted token at the assumed acceptance and the
// running batch, with the ITL p95 it predicts.
func enableSpeculative(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, ok := b.number(t.action.Setting, t.action.Default)
	if !ok {
		return Recommendation{}, skipf("needs %s of %s (instances[].settings)", t.action.Setting, t.inst.Instance)
	}
	if cur > 0 {
		return Recommendation{}, skipf("speculative decoding is on already (%s=%s): see lower_num_speculative_tokens", t.action.Setting, fmtNum(cur))
	}
	batch, ok := b.signal(sigRunning, "")
	if !ok {
		return Recommendation{}, skipf("needs %s", sigRunning)
	}
	if batch > specMaxBatch {
		return Recommendation{}, skipf("a running batch of %s is over %d: verifying drafts would eat the compute the batch uses and cost throughput", fmtNum(batch), specMaxBatch)
	}
	alpha := specAssumedAcceptance
	score := func(k int) float64 { return specCost(k, batch, specNgramDraftShare) / specTokens(alpha, k) }
	best := 1
	for k := 2; k <= specMaxTokens; k++ {
		if score(k) < score(best) {
			best = k
		}
	}
	gain := score(best)
	if gain > specMinGain {
		return Recommendation{}, skipf("k=%d would scale ITL by only %.2f (α %.2f assumed, batch %s)", best, gain, alpha, fmtNum(batch))
	}
	b.flag(fmtNum(cur), fmtNum(float64(best)))
	b.note("set %s", specFlags(t.engine, best))
	b.note("a draft model (vLLM method draft_model, eagle or eagle3 with its model; SGLang EAGLE, EAGLE3 or STANDALONE with --speculative-draft-model-path) accepts more tokens but needs a drafter trained for this model with the same tokenizer, its weights in GPU memory (less KV cache) and its own forward passes per draft")
	b.factor("method", 0.5, "expected tokens per step at an assumed acceptance; step cost from a roofline heuristic")
	if v, ok := b.signal(sigITL, p95); ok {
		b.effect(sigITL, p95, Decrease, ptr(v), ptr(round(v*gain, 6)))
	} else {
		b.effect(sigITL, p95, Decrease, nil, nil)
	}
	return b.done(fmt.Sprintf("with speculative decoding off there is no measured acceptance; at an assumed α = %.2f for n-gram drafting and a running batch of %s (at most %d), k=%d drafts emit %.2f tokens per step at %.3f of a plain step's cost, so ITL p95 scales by %.2f. Above a batch of %d, or where B11 later reports a low acceptance, lower or turn it off again.",
		alpha, fmtNum(batch), specMaxBatch, best, specTokens(alpha, best), specCost(best, batch, specNgramDraftShare), gain, specMaxBatch)), nil
}
