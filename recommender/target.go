package recommender

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

// Signal names the strategies read.
const (
	sigRunning     = "llm_requests_running"
	sigWaiting     = "llm_requests_waiting"
	sigKVUsage     = "llm_kv_cache_usage_ratio"
	sigKVCapacity  = signals.KVCacheCapacity
	sigPreemptions = "llm_preemptions_per_second"
	sigITL         = "llm_inter_token_latency_seconds"
	sigTTFT        = "llm_time_to_first_token_seconds"
	sigQueue       = "llm_queue_time_seconds"
	sigRPS         = "llm_requests_per_second"
	sigPromptMean  = "llm_prompt_tokens_mean"
	sigGenMean     = "llm_generation_tokens_mean"
	sigPrefixHit   = "llm_prefix_cache_hit_ratio"
	sigErrorRatio  = "llm_request_error_ratio"
	p95            = "0.95"
)

// kvTarget is the share of the KV cache concurrency is sized to fill
// (docs/recommendations.md, Formulas: C_kv ≈ 0.9 × N_kv / r̄).
const kvTarget = 0.9

// Weights of input sources in the confidence (docs/recommendations.md).
var sourceWeight = map[string]float64{
	SourceSignal:                 1,
	SourceFinding:                1,
	SourceHistory:                1,
	collector.SettingFromMetrics: 1,
	collector.SettingFromProbe:   1,
	collector.SettingFromConfig:  0.9,
	SourceModel:                  0.9,
	SourceDefault:                0.7,
}

// errSkip marks a strategy that did not apply; its text is the reason.
type errSkip struct{ reason string }

func (e *errSkip) Error() string { return e.reason }

func skipf(format string, args ...any) error { return &errSkip{fmt.Sprintf(format, args...)} }

// target is one recommendation id asked for one instance (or, for replica
// actions, one engine and model).
type target struct {
	def    *Definition
	action EngineAction
	engine string
	model  string
	inst   *collector.Instance
	// replicas are the instances of the engine and model, by name.
	replicas    []*collector.Instance
	findings    []Finding
	bottlenecks []string
	// order is the best position of the id in the findings' lists.
	order int
	rank  int
	// short is set by a strategy whose own estimate says the change eases
	// the bottleneck without ending it (present demand still exceeds the
	// new capacity), so a sufficient change for the same bottleneck ranks
	// first.
	short bool
}

func (t *target) has(b string) bool { return slices.Contains(t.bottlenecks, b) }

// builder accumulates one recommendation's evidence and confidence.
type builder struct {
	e        *env
	t        *target
	inst     *collector.Instance
	r        Recommendation
	inputMin float64
	inputWhy string
	seen     map[string]bool
}

func (e *env) newBuilder(t *target, inst *collector.Instance) *builder {
	b := &builder{e: e, t: t, inst: inst, inputMin: 1, seen: map[string]bool{}}
	b.r = Recommendation{
		ID:          t.def.ID,
		Engine:      t.engine,
		Model:       t.model,
		Bottlenecks: t.bottlenecks,
		Risk:        t.def.Risk,
		Time:        e.now,
	}
	if inst != nil {
		b.r.Instance = inst.Instance
	}
	for _, f := range t.findings {
		b.evidence(Evidence{Name: f.Bottleneck + " " + f.Rule, Value: fmtNum(f.Value), Source: SourceFinding, Time: f.Since}, SourceFinding)
	}
	return b
}

func (b *builder) evidence(ev Evidence, source string) {
	key := ev.Name + "\xff" + ev.Quantile + "\xff" + ev.Value
	if b.seen[key] {
		return
	}
	b.seen[key] = true
	b.r.Evidence = append(b.r.Evidence, ev)
	if w, ok := sourceWeight[source]; ok && w < b.inputMin {
		b.inputMin = w
		b.inputWhy = fmt.Sprintf("%s from %s", ev.Name, source)
	}
}

// signalOf reads a signal of inst and records it as evidence.
func (b *builder) signalOf(inst *collector.Instance, name, quantile string) (float64, bool) {
	for _, s := range inst.Signals {
		if s.Name == name && s.Quantile == quantile && !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			ev := Evidence{Name: name, Quantile: quantile, Value: fmtNum(s.Value), Source: SourceSignal, Time: b.e.now}
			if inst != b.inst {
				ev.Name = inst.Instance + " " + name
			}
			b.evidence(ev, SourceSignal)
			return s.Value, true
		}
	}
	return 0, false
}

func (b *builder) signal(name, quantile string) (float64, bool) {
	return b.signalOf(b.inst, name, quantile)
}

// settingOf reads a setting of inst as a string, falling back to def.
func (b *builder) settingOf(inst *collector.Instance, name, def string) (string, bool) {
	if name == "" {
		return "", false
	}
	evName := name
	if inst != b.inst {
		evName = inst.Instance + " " + name
	}
	if s, ok := inst.Settings[name]; ok && s.Value != "" {
		b.evidence(Evidence{Name: evName, Value: s.Value, Source: s.Source, Time: b.e.now}, s.Source)
		return s.Value, true
	}
	if def != "" {
		b.evidence(Evidence{Name: evName, Value: def, Source: SourceDefault, Time: b.e.now}, SourceDefault)
		b.note("%s not reported by %s; the engine default %s is assumed", name, inst.Instance, def)
		return def, true
	}
	return "", false
}

// number reads a numeric setting.
func (b *builder) number(name, def string) (float64, bool) {
	v, ok := b.settingOf(b.inst, name, def)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		b.note("setting %s=%q is not a number", name, v)
		return 0, false
	}
	return f, true
}

func (b *builder) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(b.r.Notes, n) {
		b.r.Notes = append(b.r.Notes, n)
	}
}

func (b *builder) factor(name string, v float64, reason string) {
	b.r.Factors = append(b.r.Factors, Factor{Name: name, Value: v, Reason: reason})
}

func (b *builder) effect(signal, quantile, dir string, current, estimate *float64) {
	b.r.Effects = append(b.r.Effects, Effect{Signal: signal, Quantile: quantile, Direction: dir, Current: current, Estimate: estimate})
}

// flag fills a flag action.
func (b *builder) flag(current, proposed string) {
	a := b.t.action
	b.r.Action = Action{Kind: KindFlag, Flag: a.Flag, Setting: a.Setting, Current: current, Proposed: proposed, Unit: a.Unit}
}

// done multiplies the factors into the confidence.
func (b *builder) done(rationale string) Recommendation {
	why := "every input came from the engine or its signals"
	if b.inputMin < 1 {
		why = "lowest-weighted input: " + b.inputWhy
	}
	b.factor("inputs", b.inputMin, why)
	c := 1.0
	for _, f := range b.r.Factors {
		c *= f.Value
	}
	b.r.Confidence = round(c, 4)
	b.r.Rationale = rationale
	return b.r
}

// model returns the shape of the instance's model, recording it.
func (b *builder) model() (Model, bool) {
	m, ok := b.e.models[b.t.model]
	if !ok {
		return Model{}, false
	}
	if m.Shape.Valid() {
		s := m.Shape
		b.evidence(Evidence{Name: "model_shape", Value: fmt.Sprintf("layers=%d kv_heads=%d head_dim=%d dtype_bytes=%s", s.Layers, s.KVHeads, s.HeadDim, fmtNum(s.DTypeBytes)), Source: SourceModel, Time: b.e.now}, SourceModel)
	}
	return m, true
}

// capacity is N_kv, the KV-cache capacity in tokens.
func (b *builder) capacityOf(inst *collector.Instance) (float64, bool) {
	if v, ok := b.signalOf(inst, sigKVCapacity, ""); ok && v > 0 {
		return v, true
	}
	switch inst.Engine {
	case signals.EngineVLLM:
		blocks, ok1 := inst.Settings.Float("num_gpu_blocks")
		size, ok2 := inst.Settings.Float("block_size")
		if ok1 && ok2 && blocks > 0 && size > 0 {
			b.settingOf(inst, "num_gpu_blocks", "")
			b.settingOf(inst, "block_size", "")
			return blocks * size, true
		}
	case signals.EngineSGLang:
		if v, ok := inst.Settings.Float("max_total_num_tokens"); ok && v > 0 {
			b.settingOf(inst, "max_total_num_tokens", "")
			return v, true
		}
	case signals.EngineTGI:
		if v, ok := inst.Settings.Float("max_batch_total_tokens"); ok && v > 0 {
			b.settingOf(inst, "max_batch_total_tokens", "")
			return v, true
		}
	}
	return 0, false
}

// tokensPerRequest is r̄, the mean KV tokens one request holds: prompt +
// output/2 (docs/recommendations.md, Formulas), or prompt + output for TGI, which reserves a
// request's whole budget up front.
func (b *builder) tokensPerRequestOf(inst *collector.Instance) (float64, string, bool) {
	p, ok1 := b.signalOf(inst, sigPromptMean, "")
	g, ok2 := b.signalOf(inst, sigGenMean, "")
	if !ok1 || !ok2 || p+g <= 0 {
		return 0, "", false
	}
	if inst.Engine == signals.EngineTGI {
		return p + g, fmt.Sprintf("r̄ = prompt %s + output %s = %s tokens (TGI reserves the whole request)", fmtNum(p), fmtNum(g), fmtNum(p+g)), true
	}
	return p + g/2, fmt.Sprintf("r̄ = prompt %s + output %s/2 = %s tokens", fmtNum(p), fmtNum(g), fmtNum(p+g/2)), true
}

// kvConcurrencyOf is C_kv, the batch the KV cache holds: ⌊0.9 × N_kv / r̄⌋,
// and on engines that preempt also ⌊(√(N_kv / r̄ + 1) − 1)²⌋.
func (b *builder) kvConcurrencyOf(inst *collector.Instance) (float64, string, bool) {
	n, ok := b.capacityOf(inst)
	if !ok {
		return 0, "", false
	}
	r, why, ok := b.tokensPerRequestOf(inst)
	if !ok {
		return 0, "", false
	}
	c := math.Floor(kvTarget * n / r)
	if inst.Engine == signals.EngineTGI {
		return c, fmt.Sprintf("C_kv = ⌊0.9 × N_kv %s / r̄ %s⌋ = %s, %s", fmtNum(n), fmtNum(r), fmtNum(c), why), true
	}
	// A batch held at its cap has requests of every age, whose resident
	// tokens add up to more than n × r̄ about as often as a Poisson count
	// exceeds n, and an engine that grows requests in place preempts when
	// they do: the busy-minute peak (n + 2√n) × r̄ must fit too, as for
	// memory changes (preemptionEffect). Below about 390 mean-size
	// requests it is the tighter bound. TGI reserves whole requests up
	// front, so a peak only queues there.
	peak := math.Floor(math.Pow(math.Sqrt(n/r+1)-1, 2))
	if peak >= c {
		return c, fmt.Sprintf("C_kv = ⌊0.9 × N_kv %s / r̄ %s⌋ = %s (its peak fits), %s", fmtNum(n), fmtNum(r), fmtNum(c), why), true
	}
	return peak, fmt.Sprintf("C_kv = ⌊(√(N_kv %s / r̄ %s + 1) − 1)²⌋ = %s, so that the busy-minute peak (n + 2√n) × r̄ fits (0.9 × N_kv / r̄ allows %s), %s", fmtNum(n), fmtNum(r), fmtNum(peak), fmtNum(c), why), true
}

// fit fits the instance's history and records its quality as a factor.
func (b *builder) fitOf(inst *collector.Instance) (Fit, bool) {
	pts := b.e.in.History[inst.Instance]
	f, err := FitITL(pts)
	if err != nil {
		switch {
		case errors.Is(err, ErrTooFewPoints):
			b.note("no ITL fit for %s: %d history points, %d needed", inst.Instance, f.N, MinFitPoints)
		default:
			b.note("no ITL fit for %s: %v", inst.Instance, err)
		}
		return Fit{}, false
	}
	if f.Beta <= 0 {
		b.note("ITL fit for %s has β = %s ≤ 0: ITL does not grow with the batch, so it bounds nothing", inst.Instance, fmtNum(round(f.Beta, 6)))
		return Fit{}, false
	}
	b.evidence(Evidence{
		Name:   "itl_fit",
		Value:  fmt.Sprintf("α=%s β=%s R²=%s n=%d batch %s..%s", fmtNum(round(f.Alpha, 6)), fmtNum(round(f.Beta, 6)), fmtNum(round(f.R2, 4)), f.N, fmtNum(f.MinBatch), fmtNum(f.MaxBatch)),
		Source: SourceHistory, Time: pts[len(pts)-1].Time,
	}, SourceHistory)
	if q := b.e.historyQuantile(); q != p95 {
		b.note("the ITL history is at quantile %s, the objective at 0.95: B* is optimistic", q)
	}
	data := round(f.R2*math.Min(1, float64(f.N)/FullConfidencePoints), 4)
	b.factor("data", data, fmt.Sprintf("ITL fit R² %s × min(1, %d points / %d)", fmtNum(round(f.R2, 4)), f.N, FullConfidencePoints))
	return f, true
}

// batchLimit is B* with its extrapolation factor.
func (b *builder) batchLimit(f Fit) (float64, string, bool) {
	slo := b.e.obj.ITLP95Seconds
	bs, _ := f.MaxBatchFor(slo)
	if bs < 1 {
		b.note("the ITL target %ss is below α = %ss: no batch size meets it", fmtNum(slo), fmtNum(round(f.Alpha, 6)))
		return 0, "", false
	}
	rng := 1.0
	switch {
	case bs > f.MaxBatch:
		rng = f.MaxBatch / bs
	case bs < f.MinBatch:
		rng = bs / f.MinBatch
	}
	b.factor("range", round(rng, 4), fmt.Sprintf("B* %s against observed batch %s..%s", fmtNum(bs), fmtNum(f.MinBatch), fmtNum(f.MaxBatch)))
	return bs, fmt.Sprintf("B* = ⌊(ITL target %s − α %s) / β %s⌋ = %s", fmtNum(slo), fmtNum(round(f.Alpha, 6)), fmtNum(round(f.Beta, 6)), fmtNum(bs)), true
}

// kvBytesPerDevice is kv_bytes/token for the instance's cache dtype,
// divided by the tensor-parallel size.
func (b *builder) kvBytesPerDevice(m Model, dtypeSetting string) (float64, string, bool) {
	if !m.Shape.Valid() {
		return 0, "", false
	}
	dt := m.Shape.DTypeBytes
	if v, ok := b.settingOf(b.inst, dtypeSetting, ""); ok {
		if d, ok := dtypeBytes(v, m.Shape.DTypeBytes); ok {
			dt = d
		}
	}
	tp := float64(max(1, m.TensorParallelSize))
	if v, ok := b.inst.Settings.Float("tp_size"); ok && v >= 1 {
		b.settingOf(b.inst, "tp_size", "")
		tp = v
	}
	kvb := m.Shape.KVBytesPerToken(dt) / tp
	s := m.Shape
	return kvb, fmt.Sprintf("kv_bytes/token = 2 × %d layers × %d KV heads × %d head_dim × %s B / TP %s = %s B", s.Layers, s.KVHeads, s.HeadDim, fmtNum(dt), fmtNum(tp), fmtNum(kvb)), true
}

// dtypeBytes is the size of one KV element for a cache dtype setting.
func dtypeBytes(v string, auto float64) (float64, bool) {
	v = strings.ToLower(v)
	switch {
	case v == "auto":
		return auto, auto > 0
	case strings.HasPrefix(v, "fp8"), v == "int8":
		return 1, true
	case strings.HasPrefix(v, "fp4"):
		return 0.5, true
	case v == "bf16", v == "bfloat16", v == "fp16", v == "float16", v == "half":
		return 2, true
	case v == "fp32", v == "float32", v == "float":
		return 4, true
	}
	return 0, false
}

func (e *env) historyQuantile() string {
	if e.in.HistoryQuantile == "" {
		return p95
	}
	return e.in.HistoryQuantile
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func ptr(v float64) *float64 { return &v }

// env is one pass's shared state.
type env struct {
	now    time.Time
	in     Input
	obj    config.Objectives
	models map[string]Model
	cfg    config.RecommenderConfig
	cat    *Catalog
}
