package recommender

import (
	"fmt"
	"math"
	"strings"

	"github.com/optiinfra/perfagent/signals"
)

// concurrencyCap sizes the running-request caps: lower_max_num_seqs,
// raise_max_num_seqs, raise_max_running_requests and
// raise_max_concurrent_requests.
func concurrencyCap(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, curOK := b.number(t.action.Setting, t.action.Default)
	var (
		proposed = math.Inf(1)
		parts    []string
		fit      Fit
		haveFit  bool
	)
	consider := func(v float64, why string) {
		proposed = math.Min(proposed, v)
		parts = append(parts, why)
	}
	lower := t.action.Direction == DirectionLower
	if !lower || t.has("B5") {
		fit, haveFit = b.fitOf(t.inst)
	}
	switch {
	case lower:
		if t.has("B1") {
			f, fNew, _, why, ok := b.memoryGrowth()
			ckv, kvWhy, kvOK := b.kvConcurrencyOf(t.inst)
			switch {
			case ok && fNew > f:
				b.note("B1: memory can still grow (%s): raise it before capping the batch", why)
			case kvOK:
				if ok {
					b.note("B1: memory cannot grow (%s)", why)
				} else {
					b.note("B1: whether memory can grow is unknown (needs %s and the GPU memory of the model)", memorySetting[t.engine])
				}
				consider(ckv, kvWhy)
			default:
				b.note("B1: the KV-supported concurrency is unknown (needs KV capacity and mean prompt and output tokens)")
			}
		}
		if t.has("B5") && haveFit {
			if bs, why, ok := b.batchLimit(fit); ok {
				consider(bs, why)
			}
		}
	default:
		ckv, kvWhy, kvOK := b.kvConcurrencyOf(t.inst)
		if !kvOK {
			return Recommendation{}, skipf("needs the KV capacity and mean prompt and output tokens of %s", t.inst.Instance)
		}
		if r, ok := b.signal(sigRunning, ""); ok && t.engine == signals.EngineTGI && r >= ckv {
			return Recommendation{}, skipf("no KV headroom: %s requests in flight already reach %s; scale out instead", fmtNum(r), kvWhy)
		}
		consider(ckv, kvWhy)
		if haveFit {
			if bs, why, ok := b.batchLimit(fit); ok {
				consider(bs, why)
			}
		} else {
			b.factor("data", 0.7, "no ITL fit: the ITL target is not checked")
		}
	}
	if math.IsInf(proposed, 1) {
		return Recommendation{}, skipf("no bound could be computed: %s", strings.Join(b.r.Notes, "; "))
	}
	if proposed < 1 {
		return Recommendation{}, skipf("the computed cap %s is below one request", fmtNum(proposed))
	}
	current := "unknown"
	if curOK {
		current = fmtNum(cur)
		if lower && proposed >= cur {
			return Recommendation{}, skipf("the computed cap %s is not below the current %s", fmtNum(proposed), current)
		}
		if !lower && proposed <= cur {
			return Recommendation{}, skipf("the computed cap %s is not above the current %s", fmtNum(proposed), current)
		}
	} else {
		b.note("%s is not reported: set it under instances[].settings to compare", t.action.Setting)
		b.factor("current", 0.7, "current value unknown")
	}
	b.flag(current, fmtNum(proposed))
	b.factor("method", 1, "KV concurrency and the ITL fit")
	rationale := "Proposed = min(" + strings.Join(parts, "; ") + ")."
	r, rOK := b.signal(sigRunning, "")
	w, wOK := b.signal(sigWaiting, "")
	if lower {
		if t.has("B1") {
			if p, ok := b.signal(sigPreemptions, ""); ok {
				b.effect(sigPreemptions, "", Decrease, ptr(p), ptr(0))
			}
		}
		if rOK && r > proposed {
			b.effect(sigRunning, "", Decrease, ptr(r), ptr(proposed))
		}
		if haveFit {
			itl, _ := b.signal(sigITL, e.historyQuantile())
			b.effect(sigITL, e.historyQuantile(), Decrease, ptrIf(itl, itl > 0), ptr(round(fit.Predict(proposed), 6)))
			rationale += fmt.Sprintf(" Predicted ITL at %s = %s.", fmtNum(proposed), fmtNum(round(fit.Predict(proposed), 6)))
		}
		return b.done(rationale), nil
	}
	if rOK && wOK {
		run := math.Min(r+w, proposed)
		b.effect(sigRunning, "", Increase, ptr(r), ptr(run))
		b.effect(sigWaiting, "", Decrease, ptr(w), ptr(math.Max(0, r+w-proposed)))
		rationale += fmt.Sprintf(" Running min(R %s + W %s, %s) = %s.", fmtNum(r), fmtNum(w), fmtNum(proposed), fmtNum(run))
		if haveFit {
			itl, _ := b.signal(sigITL, e.historyQuantile())
			b.effect(sigITL, e.historyQuantile(), Increase, ptrIf(itl, itl > 0), ptr(round(fit.Predict(run), 6)))
			rationale += fmt.Sprintf(" Predicted ITL at %s = %s.", fmtNum(run), fmtNum(round(fit.Predict(run), 6)))
		}
	}
	return b.done(rationale), nil
}

func ptrIf(v float64, ok bool) *float64 {
	if !ok {
		return nil
	}
	return &v
}

// nextPow2 is the smallest power of two ≥ v.
func nextPow2(v float64) float64 {
	if v <= 1 {
		return 1
	}
	return math.Pow(2, math.Ceil(math.Log2(v)))
}

// batchedTokens sizes raise_ and lower_max_num_batched_tokens.
func batchedTokens(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, ok := b.number(t.action.Setting, t.action.Default)
	if !ok {
		return Recommendation{}, skipf("%s is not reported by %s; set it under instances[].settings", t.action.Setting, t.inst.Instance)
	}
	r, rOK := b.signal(sigRunning, "")
	if !rOK {
		return Recommendation{}, skipf("needs %s", sigRunning)
	}
	var proposed float64
	var rationale string
	if t.action.Direction == DirectionRaise {
		p, ok := b.signal(sigPromptMean, "")
		if !ok {
			return Recommendation{}, skipf("needs %s", sigPromptMean)
		}
		need := r + p
		if need <= cur {
			return Recommendation{}, skipf("the mean prompt %s plus %s decode tokens already fits one step of %s", fmtNum(p), fmtNum(r), fmtNum(cur))
		}
		proposed = nextPow2(math.Ceil(need))
		rationale = fmt.Sprintf("A step holds one token per running request and the rest for prefill: the mean prompt %s + R %s = %s tokens; rounded up to a power of two, %s, so the mean prompt prefills in one step", fmtNum(p), fmtNum(r), fmtNum(need), fmtNum(proposed))
		if cur > r {
			rationale += fmt.Sprintf(" instead of ⌈%s / (%s − %s)⌉ = %s", fmtNum(p), fmtNum(cur), fmtNum(r), fmtNum(math.Ceil(p/(cur-r))))
		}
		rationale += "."
		b.factor("method", 0.8, "sized from the mean prompt; the size of the TTFT gain is not modelled")
		if v, ok := b.signal(sigTTFT, p95); ok {
			b.effect(sigTTFT, p95, Decrease, ptr(v), nil)
		}
		if v, ok := b.signal(sigITL, p95); ok {
			b.effect(sigITL, p95, Increase, ptr(v), nil)
		}
	} else {
		floor := nextPow2(math.Ceil(r))
		why := fmt.Sprintf("R %s rounded up to a power of two", fmtNum(r))
		if seqs, ok := b.number("max_num_seqs", ""); ok && t.engine == signals.EngineVLLM && seqs > floor {
			floor, why = seqs, "max_num_seqs, which vLLM requires the budget to cover"
		}
		proposed = math.Max(math.Floor(cur/2), floor)
		if proposed >= cur {
			return Recommendation{}, skipf("halving %s would go below %s (%s)", fmtNum(cur), fmtNum(floor), why)
		}
		rationale = fmt.Sprintf("One halving step: max(%s / 2, %s (%s)) = %s; change one knob at a time and measure again.", fmtNum(cur), fmtNum(floor), why, fmtNum(proposed))
		b.factor("method", 0.5, "step rule, no model of the effect size")
		if v, ok := b.signal(sigITL, p95); ok {
			b.effect(sigITL, p95, Decrease, ptr(v), nil)
		}
		if v, ok := b.signal(sigTTFT, "0.99"); ok && t.has("B8") {
			b.effect(sigTTFT, "0.99", Decrease, ptr(v), nil)
		}
	}
	b.flag(fmtNum(cur), fmtNum(proposed))
	return b.done(rationale), nil
}

// longPrefillThreshold proposes vLLM's own default with partial
// prefills: 4 % of max_model_len.
func longPrefillThreshold(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, _ := b.number(t.action.Setting, t.action.Default)
	mml, ok := b.number("max_model_len", "")
	if !ok {
		return Recommendation{}, skipf("needs max_model_len of %s (vLLM /v1/models or instances[].settings)", t.inst.Instance)
	}
	proposed := math.Floor(0.04 * mml)
	if cur > 0 && cur <= proposed {
		return Recommendation{}, skipf("the threshold %s already caps prefills at or below %s", fmtNum(cur), fmtNum(proposed))
	}
	b.flag(fmtNum(cur), fmtNum(proposed))
	b.factor("method", 0.5, "vLLM's default rule, no model of the effect size")
	if v, ok := b.signal(sigTTFT, "0.99"); ok {
		b.effect(sigTTFT, "0.99", Decrease, ptr(v), nil)
	}
	if v, ok := b.signal(sigITL, p95); ok && t.has("B5") {
		b.effect(sigITL, p95, Decrease, ptr(v), nil)
	}
	return b.done(fmt.Sprintf("⌊0.04 × max_model_len %s⌋ = %s tokens, the threshold vLLM applies itself when partial prefills are on; 0 means no cap.", fmtNum(mml), fmtNum(proposed))), nil
}

// enablePrefixCaching proposes turning prefix caching on when it is off.
func enablePrefixCaching(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, _ := b.settingOf(t.inst, t.action.Setting, t.action.Default)
	if strings.EqualFold(cur, "true") || cur == "1" {
		if _, reported := t.inst.Settings[t.action.Setting]; !reported {
			return Recommendation{}, skipf("%s is not reported and the engine default is on; report it (instances[].settings) if it was turned off", t.action.Setting)
		}
		return Recommendation{}, skipf("prefix caching is already on (%s=%s)", t.action.Setting, cur)
	}
	b.flag(cur, t.action.Value)
	b.factor("method", 0.8, "restores the documented default; the gain depends on shared prefixes")
	if v, ok := b.signal(sigPrefixHit, ""); ok {
		b.effect(sigPrefixHit, "", Increase, ptr(v), nil)
	} else {
		b.effect(sigPrefixHit, "", Increase, nil, nil)
	}
	if v, ok := b.signal(sigTTFT, p95); ok {
		b.effect(sigTTFT, p95, Decrease, ptr(v), nil)
	}
	return b.done(fmt.Sprintf("%s=%s: every prompt is prefilled in full; with caching on, prefill tokens saved ≈ the hit ratio.", t.action.Setting, cur)), nil
}
