package recommender

import (
	"fmt"
	"math"

	"github.com/optiinfra/perfagent/signals"
)

// memorySetting is the engine setting of the memory fraction.
var memorySetting = map[string]string{
	signals.EngineVLLM:   "gpu_memory_utilization",
	signals.EngineSGLang: "mem_fraction_static",
}

// memoryGrowth is f' = min(max_fraction, f + ((1 − f)·G − reserved)/G),
// rounded down to 0.01; ok is false when an input is missing.
// gib is a gibibyte, the unit of memory in rationales.
const gib = 1 << 30

func (b *builder) memoryGrowth() (f, fNew, gpu float64, why string, ok bool) {
	name := memorySetting[b.inst.Engine]
	f, ok1 := b.number(name, "")
	m, ok2 := b.model()
	if !ok1 || !ok2 || m.GPU.MemoryBytes <= 0 {
		return 0, 0, 0, "", false
	}
	gpu = m.GPU.MemoryBytes
	b.evidence(Evidence{Name: "gpu_memory_bytes", Value: fmtNum(gpu), Source: SourceModel, Time: b.e.now}, SourceModel)
	res := b.e.cfg.Memory.ReservedBytes[b.inst.Engine]
	h := ((1-f)*gpu - res) / gpu
	fNew = math.Floor(math.Min(b.e.cfg.Memory.MaxFraction, f+h)*100+1e-9) / 100
	why = fmt.Sprintf("%s' = min(%s, %s + ((1 − %s) × %s GiB − %s GiB reserved) / %s GiB) = %s",
		name, fmtNum(b.e.cfg.Memory.MaxFraction), fmtNum(f), fmtNum(f), fmtNum(round(gpu/gib, 3)), fmtNum(round(res/gib, 3)), fmtNum(round(gpu/gib, 3)), fmtNum(fNew))
	return f, fNew, gpu, why, true
}

// preemptionEffect expects preemptions to stop when the present requests
// fit 90 % of the new capacity, (R + W) × r̄ ≤ 0.9 × N', and their peak
// fits all of it, (n + 2√n) × r̄ ≤ N' with n = R + W: the number of
// requests in a server is Poisson-like (M/G/∞), so a mean that fits
// with only a few percent to spare overflows on the next busy minute.
func (b *builder) preemptionEffect(capNew float64) string {
	cur, ok := b.signal(sigPreemptions, "")
	if !ok {
		return ""
	}
	r, ok1 := b.signal(sigRunning, "")
	w, ok2 := b.signal(sigWaiting, "")
	rb, _, ok3 := b.tokensPerRequestOf(b.inst)
	if !ok1 || !ok2 || !ok3 {
		b.effect(sigPreemptions, "", Decrease, ptr(cur), nil)
		return ""
	}
	n := r + w
	demand, peak := n*rb, (n+2*math.Sqrt(n))*rb
	if demand <= kvTarget*capNew && peak <= capNew {
		b.effect(sigPreemptions, "", Decrease, ptr(cur), ptr(0))
		return fmt.Sprintf(" Present demand (R %s + W %s) × r̄ %s = %s tokens fits 0.9 × %s, and its peak (n + 2√n) × r̄ = %s fits %s, so preemptions should stop.",
			fmtNum(r), fmtNum(w), fmtNum(rb), fmtNum(demand), fmtNum(capNew), fmtNum(round(peak, 0)), fmtNum(capNew))
	}
	b.effect(sigPreemptions, "", Decrease, ptr(cur), nil)
	b.t.short = true
	return fmt.Sprintf(" Present demand (R %s + W %s) × r̄ %s = %s tokens, peak (n + 2√n) × r̄ = %s, does not fit 0.9 × %s and %s: preemptions fall but do not stop.",
		fmtNum(r), fmtNum(w), fmtNum(rb), fmtNum(demand), fmtNum(round(peak, 0)), fmtNum(capNew), fmtNum(capNew))
}

// capacityEffects adds the KV capacity and usage effects of growing N to
// nNew, and returns the rationale sentence.
func (b *builder) capacityEffects(n, nNew float64) string {
	b.effect(sigKVCapacity, "", Increase, ptr(n), ptr(nNew))
	s := fmt.Sprintf(" N_kv %s → %s tokens.", fmtNum(n), fmtNum(nNew))
	if u, ok := b.signal(sigKVUsage, ""); ok {
		est := round(u*n/nNew, 6)
		b.effect(sigKVUsage, "", Decrease, ptr(u), ptr(est))
		s += fmt.Sprintf(" KV usage %s × %s / %s = %s.", fmtNum(u), fmtNum(n), fmtNum(nNew), fmtNum(est))
	}
	return s + b.preemptionEffect(nNew)
}

// raiseMemory sizes raise_gpu_memory_utilization and raise_mem_fraction_static.
func raiseMemory(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	f, fNew, gpu, why, ok := b.memoryGrowth()
	if !ok {
		return Recommendation{}, skipf("needs %s and the GPU memory of model %q (recommender.models)", t.action.Setting, t.model)
	}
	if fNew <= f {
		return Recommendation{}, skipf("no memory headroom: %s", why)
	}
	b.flag(fmtNum(f), fmtNum(fNew))
	b.factor("method", 1, "KV capacity formula")
	rationale := fmt.Sprintf("%s. The added %s GiB all go to the KV cache.", why, fmtNum(round(round(fNew-f, 4)*gpu/gib, 3)))
	m, _ := b.model()
	kvb, kvWhy, ok := b.kvBytesPerDevice(m, dtypeSettingOf(t.engine))
	if !ok {
		b.note("no model shape for %q: the extra KV tokens are not estimated", t.model)
		b.factor("data", 0.7, "extra tokens not estimated without a model shape")
		return b.done(rationale), nil
	}
	delta := round(fNew-f, 4)
	extra := math.Floor(delta * gpu / kvb)
	rationale += fmt.Sprintf(" %s; extra tokens = ⌊%s × %s B / %s B⌋ = %s.", kvWhy, fmtNum(delta), fmtNum(gpu), fmtNum(kvb), fmtNum(extra))
	if n, ok := b.capacityOf(t.inst); ok {
		rationale += b.capacityEffects(n, n+extra)
	} else {
		b.note("KV capacity of %s unknown: effects on usage not estimated", t.inst.Instance)
	}
	return b.done(rationale), nil
}

// dtypeSettingOf is the cache-dtype setting of an engine.
func dtypeSettingOf(engine string) string {
	if engine == signals.EngineVLLM {
		return "cache_dtype"
	}
	return "kv_cache_dtype"
}

// fp8KVCache sizes fp8_kv_cache: N' = N × current bytes per element / 1.
func fp8KVCache(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, _ := b.settingOf(t.inst, t.action.Setting, t.action.Default)
	auto := 0.0
	if m, ok := b.model(); ok {
		auto = m.Shape.DTypeBytes
	}
	bytes, ok := dtypeBytes(cur, auto)
	if !ok {
		return Recommendation{}, skipf("the element size of cache dtype %q is unknown (for auto, describe model %q in recommender.models)", cur, t.model)
	}
	if bytes <= 1 {
		return Recommendation{}, skipf("the KV cache is already %s (%s byte per element)", cur, fmtNum(bytes))
	}
	b.flag(cur, t.action.Value)
	b.factor("method", 1, "KV capacity scales with bytes per element")
	rationale := fmt.Sprintf("Cache dtype %s stores %s bytes per element, FP8 stores 1: N_kv × %s.", cur, fmtNum(bytes), fmtNum(bytes))
	if n, ok := b.capacityOf(t.inst); ok {
		rationale += b.capacityEffects(n, n*bytes)
	} else {
		b.note("KV capacity of %s unknown: effects on usage not estimated", t.inst.Instance)
	}
	if t.engine == signals.EngineTGI {
		b.note("TGI supports FP8 KV on CUDA only")
	}
	return b.done(rationale), nil
}
