package recommender

import (
	"fmt"
	"math"
	"slices"
)

// tpEfficiency is the share of the t-fold speed-up a tensor-parallel
// prefill keeps: each layer ends with an all-reduce of its activations
// that the GEMMs do not fully hide.
const tpEfficiency = 0.9

// tpDegrees are the tensor-parallel degrees considered, at most the GPUs of
// one node (8): a shard group spanning nodes pays its all-reduces over the
// network.
var tpDegrees = []float64{2, 4, 8}

// tensorParallel sizes raise_tensor_parallel: the smallest degree t whose
// predicted TTFT p95, TTFT p95 × t_now / (t × 0.9), meets the TTFT target,
// once the prefill p95 alone is over the target. Prefill of a long prompt is compute-bound, so only more
// FLOP/s shortens it; a bigger per-step budget only saves step overheads.
func tensorParallel(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, ok := b.number(t.action.Setting, t.action.Default)
	if !ok {
		return Recommendation{}, skipf("%s is not reported by %s; set it under instances[].settings", t.action.Setting, t.inst.Instance)
	}
	cur = math.Max(cur, 1)
	goal := e.obj.TTFTP95Seconds
	ttft, ok := b.signal(sigTTFT, p95)
	if !ok {
		return Recommendation{}, skipf("needs %s p95", sigTTFT)
	}
	prefill, src := 0.0, "prefill time p95"
	if v, ok := b.signal("llm_prefill_time_seconds", p95); ok {
		prefill = v
	} else {
		q, ok := b.signal(sigQueue, p95)
		if !ok {
			return Recommendation{}, skipf("needs the prefill time p95, or %s and %s p95", sigTTFT, sigQueue)
		}
		prefill, src = ttft-q, "TTFT p95 − queue p95"
	}
	if prefill <= goal {
		return Recommendation{}, skipf("the %s %s s fits the TTFT target %s s: the excess is not prefill compute", src, fmtNum(round(prefill, 4)), fmtNum(goal))
	}
	// Under B4 the little waiting there is, is waiting behind other
	// prompts' prefill, which shrinks with it: the whole TTFT p95 scales.
	predict := func(tp float64) float64 { return round(ttft*cur/(tp*tpEfficiency), 4) }
	i := slices.IndexFunc(tpDegrees, func(tp float64) bool { return tp > cur && predict(tp) <= goal })
	proposed := 0.0
	switch {
	case i >= 0:
		proposed = tpDegrees[i]
		b.factor("method", 0.85, "prefill time scaled by the compute of the shards; all-reduce cost estimated")
	case cur < tpDegrees[len(tpDegrees)-1]:
		proposed = tpDegrees[len(tpDegrees)-1]
		b.note("even %s GPUs of one node do not bring TTFT p95 under %s s (predicted %s s): shorten prompts or split prefill and decode", fmtNum(proposed), fmtNum(goal), fmtNum(predict(proposed)))
		b.factor("method", 0.7, "the largest degree of one node still misses the TTFT target")
	default:
		return Recommendation{}, skipf("%s is already %s, the GPUs of one node", t.action.Setting, fmtNum(cur))
	}
	est := predict(proposed)
	b.flag(fmtNum(cur), fmtNum(proposed))
	b.effect(sigTTFT, p95, Decrease, ptr(ttft), ptr(est))
	rationale := fmt.Sprintf("Prefill is compute-bound: the %s %s s exceeds the TTFT target %s s however the prompt is chunked. "+
		"%s GPUs give %s × %s of the FLOP/s, and the waiting behind other prefills shrinks with them: TTFT p95 ≈ %s s × %s / (%s × %s) = %s s.",
		src, fmtNum(round(prefill, 4)), fmtNum(goal),
		fmtNum(proposed), fmtNum(proposed/cur), fmtNum(tpEfficiency),
		fmtNum(round(ttft, 4)), fmtNum(cur), fmtNum(proposed), fmtNum(tpEfficiency), fmtNum(est))
	if n, ok := b.capacityOf(t.inst); ok {
		rationale += b.shardedCapacity(n, cur, proposed)
	}
	rationale += fmt.Sprintf(" The instance then holds %s GPUs instead of %s: its cost per hour × %s.", fmtNum(proposed), fmtNum(cur), fmtNum(proposed/cur))
	return b.done(rationale), nil
}

// shardedCapacity adds the KV capacity effect of going from cur to tp
// shards. Each GPU keeps its free memory N·kv_bytes/cur and sheds
// W/cur − W/tp of weights, so N' = N·tp/cur + W·(tp/cur − 1)/kv_bytes
// (kv_bytes over all shards); without a model shape, at least N·tp/cur.
func (b *builder) shardedCapacity(n, cur, tp float64) string {
	nNew := math.Floor(n * tp / cur)
	m, ok := b.model()
	if !ok || !m.Shape.Valid() || m.Shape.Parameters <= 0 {
		b.effect(sigKVCapacity, "", Increase, ptr(n), ptr(nNew))
		return fmt.Sprintf(" Weights split over the GPUs leave each more room: N_kv %s → at least %s tokens (no model shape for the weights).", fmtNum(n), fmtNum(nNew))
	}
	dt := m.Shape.DTypeBytes
	if v, ok := b.settingOf(b.inst, dtypeSettingOf(b.t.engine), ""); ok {
		if d, ok := dtypeBytes(v, m.Shape.DTypeBytes); ok {
			dt = d
		}
	}
	kvb := m.Shape.KVBytesPerToken(dt)
	w := m.Shape.Parameters * m.Shape.DTypeBytes
	nNew = math.Floor(n*tp/cur + w*(tp/cur-1)/kvb)
	b.effect(sigKVCapacity, "", Increase, ptr(n), ptr(nNew))
	return fmt.Sprintf(" Each GPU keeps its free memory and sheds weights: N_kv' = %s × %s / %s + %s B × (%s / %s − 1) / %s B = %s tokens.",
		fmtNum(n), fmtNum(tp), fmtNum(cur), fmtNum(w), fmtNum(tp), fmtNum(cur), fmtNum(kvb), fmtNum(nNew))
}
