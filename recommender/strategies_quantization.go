package recommender

import (
	"fmt"
	"math"
	"strings"

	"github.com/optiinfra/perfagent/signals"
)

// fp8GEMMSpeedup is the prefill speed-up FP8 weights give on a GPU with
// FP8 tensor cores (recommender.models[].gpu says which GPU; without it
// the speed-up is stated as a condition).
const fp8GEMMSpeedup = 1.6

// fp8Weights sizes fp8_weights: the weights shrink from the model dtype to
// one byte per parameter. For B1 the freed bytes become KV tokens; for B4
// the prefill time shrinks by the FP8 GEMM speed-up; for B5 each decode
// step reads half the weight bytes.
func fp8Weights(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, _ := b.settingOf(t.inst, t.action.Setting, t.action.Default)
	if cur != "" && !strings.EqualFold(cur, "none") {
		return Recommendation{}, skipf("the weights are already quantized (%s %s)", t.action.Setting, cur)
	}
	m, ok := b.model()
	if !ok || m.Shape.Parameters <= 0 || m.Shape.DTypeBytes <= 0 {
		return Recommendation{}, skipf("needs the parameters and dtype of model %q (recommender.models)", t.model)
	}
	if m.Shape.DTypeBytes <= 1 {
		return Recommendation{}, skipf("model %q already has %s byte per weight", t.model, fmtNum(m.Shape.DTypeBytes))
	}
	fp8 := m.GPU.FP8
	if fp8 != nil && !*fp8 && !t.has("B1") && !t.has("B5") {
		return Recommendation{}, skipf("GPU %s has no FP8 tensor cores: FP8 weights would not speed up prefill", m.GPU.Type)
	}
	b.flag(cur, t.action.Value)
	switch {
	case fp8 == nil:
		b.factor("method", 0.7, "the GPU's FP8 support is not known: the speed-up holds on FP8 tensor cores only")
	case *fp8:
		b.factor("method", 0.8, fmt.Sprintf("GPU %s has FP8 tensor cores; the %s× GEMM speed-up is a typical figure, not measured here", m.GPU.Type, fmtNum(fp8GEMMSpeedup)))
	default:
		b.factor("method", 0.8, fmt.Sprintf("GPU %s has no FP8 tensor cores: only memory and weight reads are saved", m.GPU.Type))
	}
	b.note("FP8 weights lose a little accuracy: validate on your eval set")
	tp := float64(max(1, m.TensorParallelSize))
	freed := m.Shape.Parameters * (m.Shape.DTypeBytes - 1) / tp
	rationale := fmt.Sprintf("Weights %s × %s B → 1 B per parameter free %s GiB per GPU (TP %s).",
		fmtNum(m.Shape.Parameters), fmtNum(m.Shape.DTypeBytes), fmtNum(round(freed/gib, 3)), fmtNum(tp))
	if t.has("B1") {
		rationale += b.freedKV(m, t, freed)
	}
	if t.has("B4") && (fp8 == nil || *fp8) {
		if ttft, ok := b.signal(sigTTFT, p95); ok {
			est := ttft / fp8GEMMSpeedup
			if pf, ok := b.signal("llm_prefill_time_seconds", p95); ok && pf < ttft {
				est = ttft - pf + pf/fp8GEMMSpeedup
			}
			est = round(est, 4)
			b.effect(sigTTFT, p95, Decrease, ptr(ttft), ptr(est))
			on := "On FP8 tensor cores"
			if fp8 != nil {
				on = "On the FP8 tensor cores of " + m.GPU.Type
			}
			rationale += fmt.Sprintf(" %s the prefill GEMMs run about %s× faster: TTFT p95 %s → %s s.", on, fmtNum(fp8GEMMSpeedup), fmtNum(round(ttft, 4)), fmtNum(est))
		}
	}
	if t.has("B5") {
		if itl, ok := b.signal(sigITL, p95); ok {
			b.effect(sigITL, p95, Decrease, ptr(itl), nil)
			rationale += " A decode step reads every weight once: half the weight bytes shorten it."
		}
	}
	return b.done(rationale), nil
}

// awqBytesPerParam is what an AWQ checkpoint stores per weight: four bits,
// plus a 16-bit scale and a 4-bit zero point for each group of 128 weights.
const awqBytesPerParam = 0.5 + 2.5/128

// int4AWQWeights sizes int4_awq_weights, a manual action: AWQ needs a
// checkpoint quantized offline, which no flag produces, so the engine
// flag that loads it is a note. For B1 the freed bytes become KV tokens;
// for B5 a decode step reads about a quarter of the 16-bit weight bytes.
func int4AWQWeights(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	setting := "quantization"
	if t.engine == signals.EngineTGI {
		setting = "quantize"
	}
	if cur, _ := b.settingOf(t.inst, setting, "none"); cur != "" && !strings.EqualFold(cur, "none") {
		return Recommendation{}, skipf("the weights are already quantized (%s %s)", setting, cur)
	}
	m, ok := b.model()
	if !ok || m.Shape.Parameters <= 0 || m.Shape.DTypeBytes <= 0 {
		return Recommendation{}, skipf("needs the parameters and dtype of model %q (recommender.models)", t.model)
	}
	if m.Shape.DTypeBytes <= awqBytesPerParam {
		return Recommendation{}, skipf("model %q already has %s byte per weight", t.model, fmtNum(m.Shape.DTypeBytes))
	}
	b.r.Action = Action{Kind: KindManual, Note: t.action.Note}
	b.factor("method", 0.5, "manual action: needs an AWQ checkpoint of the model, and its accuracy is not known until evaluated")
	b.note("INT4 weights lose more accuracy than FP8, most on long reasoning and code: evaluate the AWQ checkpoint on your eval set first")
	tp := float64(max(1, m.TensorParallelSize))
	freed := m.Shape.Parameters * (m.Shape.DTypeBytes - awqBytesPerParam) / tp
	rationale := fmt.Sprintf("Weights %s × %s B → %s B per parameter (4 bits and a scale per 128) free %s GiB per GPU (TP %s).",
		fmtNum(m.Shape.Parameters), fmtNum(m.Shape.DTypeBytes), fmtNum(round(awqBytesPerParam, 3)), fmtNum(round(freed/gib, 3)), fmtNum(tp))
	if t.has("B1") {
		rationale += b.freedKV(m, t, freed)
	}
	if t.has("B5") {
		if itl, ok := b.signal(sigITL, p95); ok {
			b.effect(sigITL, p95, Decrease, ptr(itl), nil)
			rationale += " A decode step reads every weight once: a quarter of the 16-bit bytes shortens it; prefill GEMMs do not speed up."
		}
	}
	return b.done(rationale), nil
}

// freedKV turns the bytes per GPU that smaller weights free into KV tokens,
// states the capacity effects and says how.
func (b *builder) freedKV(m Model, t *target, freed float64) string {
	kvb, kvWhy, ok := b.kvBytesPerDevice(m, dtypeSettingOf(t.engine))
	if !ok {
		return ""
	}
	extra := math.Floor(freed / kvb)
	why := fmt.Sprintf(" %s; extra tokens = ⌊%s B / %s B⌋ = %s.", kvWhy, fmtNum(freed), fmtNum(kvb), fmtNum(extra))
	if n, ok := b.capacityOf(t.inst); ok {
		why += b.capacityEffects(n, n+extra)
	}
	return why
}
