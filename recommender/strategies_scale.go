package recommender

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/signals"
)

// maxUtilization keeps a 10 % stability margin, as llm-d's Workload
// Variant Autoscaler does (docs/bottlenecks.md B2).
const maxUtilization = 0.9

// maxSlots bounds the per-replica concurrency the M/M/c model is run with;
// larger values come from settings no server runs with.
const maxSlots = 100000

// maxSearch bounds how many replica counts the sizing tries above the
// utilization floor.
const maxSearch = 1000

// capSetting is the running-request cap of each engine.
var capSetting = map[string]string{
	signals.EngineVLLM:   "max_num_seqs",
	signals.EngineSGLang: "max_running_requests",
	signals.EngineTGI:    "max_concurrent_requests",
}

// replicas sizes scale_out and scale_in for one engine and model: the
// mean service time from Little's law S = ΣR / Σλ, per-replica slots
// c = min(cap, C_kv, B*), and the fewest replicas n with ρ = λS/(n·c) ≤ 0.9
// and an M/M/c p95 queue wait within the target.
func replicas(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, nil)
	n := len(t.replicas)
	var lambda, running, waiting, usage, capTotal float64
	capAll := true
	var names []string
	slots := math.Inf(1)
	var slotWhy string
	usageN := 0
	for _, inst := range t.replicas {
		names = append(names, inst.Instance)
		l, ok1 := b.signalOf(inst, sigRPS, "")
		r, ok2 := b.signalOf(inst, sigRunning, "")
		if !ok1 || !ok2 {
			return Recommendation{}, skipf("needs %s and %s of every replica; %s lacks them", sigRPS, sigRunning, inst.Instance)
		}
		lambda += l
		running += r
		if w, ok := b.signalOf(inst, sigWaiting, ""); ok {
			waiting += w
		}
		if u, ok := b.signalOf(inst, sigKVUsage, ""); ok {
			usage += u
			usageN++
		}
		capKnown := false
		if v, ok := b.settingOf(inst, capSetting[inst.Engine], ""); ok {
			var c float64
			if _, err := fmt.Sscan(v, &c); err == nil && c > 0 {
				capTotal += c
				capKnown = true
				if c < slots {
					slots, slotWhy = c, fmt.Sprintf("%s of %s = %s", capSetting[inst.Engine], inst.Instance, v)
				}
			}
		}
		capAll = capAll && capKnown
		if c, why, ok := b.kvConcurrencyOf(inst); ok && c >= 1 && c < slots {
			slots, slotWhy = c, why+" on "+inst.Instance
		}
		if f, ok := b.fitOf(inst); ok {
			if bs, why, ok := b.batchLimit(f); ok && bs < slots {
				slots, slotWhy = bs, why+" on "+inst.Instance
			}
		}
	}
	if lambda <= 0 || running <= 0 {
		return Recommendation{}, skipf("no load measured (λ = %s/s, R = %s)", fmtNum(lambda), fmtNum(running))
	}
	if math.IsInf(slots, 1) {
		return Recommendation{}, skipf("no per-replica concurrency limit is known (running cap, KV capacity with token means, or an ITL fit)")
	}
	target, targetWhy := e.queueTarget(b, t.replicas)
	if target <= 0 {
		return Recommendation{}, skipf("the queue-wait target is not positive: %s", targetWhy)
	}
	if slots > maxSlots {
		return Recommendation{}, skipf("per-replica concurrency %s is above %d, outside the queueing model's range", fmtNum(slots), maxSlots)
	}
	service := running / lambda
	c := int(slots)
	size := func(k int) Queue { return Queue{Servers: c, Lambda: lambda / float64(k), Service: service} }
	// Start at the fewest replicas that keep ρ ≤ 0.9; the wait falls as
	// replicas are added, and reaches 0 once fewer than 5 % of arrivals wait.
	first := max(1, int(math.Ceil(lambda*service/(maxUtilization*slots))))
	to := 0
	for k := first; k < first+maxSearch; k++ {
		if q := size(k); q.Utilization() <= maxUtilization && q.WaitQuantile(0.95) <= target {
			to = k
			break
		}
	}
	if to == 0 {
		return Recommendation{}, skipf("no replica count from %d to %d meets the p95 queue-wait target %ss", first, first+maxSearch-1, fmtNum(target))
	}
	b.factor("method", 0.8, "M/M/c assumes Poisson arrivals and exponential service")
	rationale := fmt.Sprintf("Little's law: S = ΣR %s / Σλ %s/s = %ss per request; c = %s; target p95 queue wait %ss (%s). The fewest replicas with ρ = λS/(n·c) ≤ 0.9 and Erlang-C p95 wait ≤ target: n = %d (ρ = %s, p95 wait %ss).",
		fmtNum(round(running, 6)), fmtNum(round(lambda, 6)), fmtNum(round(service, 6)), slotWhy, fmtNum(target), targetWhy, to, fmtNum(round(size(to).Utilization(), 4)), fmtNum(round(size(to).WaitQuantile(0.95), 6)))
	up := t.action.Direction == DirectionRaise
	// Saturated replicas complete requests as fast as they can: measured
	// throughput is their capacity at the present settings, and the
	// service time S was measured at the batch they run, larger than c,
	// so the M/M/c count above overstates the replicas the load needs.
	saturated := waiting >= 1 || (capAll && running >= maxUtilization*capTotal)
	if up && saturated {
		offered, offeredWhy := e.offeredLoad(t, lambda, waiting)
		perReplica := lambda / float64(n)
		byLoad := max(n+1, int(math.Ceil(offered/(maxUtilization*perReplica))))
		rationale += fmt.Sprintf(" The replicas are saturated (%s requests running, %s waiting): each completes λ/n = %s/s, its capacity at these settings; the offered load is %s; ⌈%s / (0.9 × %s)⌉ = %d replicas carry it with a 10 %% margin.",
			fmtNum(round(running, 6)), fmtNum(round(waiting, 6)), fmtNum(round(perReplica, 6)), offeredWhy, fmtNum(round(offered, 6)), fmtNum(round(perReplica, 6)), byLoad)
		to = max(n+1, min(to, byLoad))
		// The queue model of the effects runs at the replicas' measured
		// concurrency, whose capacity is the measured throughput.
		lambda, c = offered, max(1, int(math.Round(running/float64(n))))
		b.factor("range", 0.7, "offered load under a backlog is estimated from the queue's growth")
	}
	if up && to > 2*n {
		rationale += fmt.Sprintf(" At most twice the replicas per change (%d → %d): the next measurement sizes the rest, so an overstated load does not over-provision.", n, 2*n)
		to = 2 * n
	}
	switch {
	case up && to <= n && waiting > 0:
		to = n + 1
		b.factor("range", 0.7, "measured throughput under a backlog is a lower bound of demand")
		rationale += fmt.Sprintf(" That is not above the current %d, but %s requests wait: throughput under a backlog understates demand, so one replica is added and the result measured again.", n, fmtNum(waiting))
	case up && to <= n:
		return Recommendation{}, skipf("the measured load fits %d replicas, and %d run", to, n)
	case !up && to >= n:
		return Recommendation{}, skipf("the measured load needs %d replicas at the target, and %d run", to, n)
	}
	sort.Strings(names)
	b.r.Action = Action{Kind: KindReplicas, From: n, To: to, Instances: names}
	q, qn := size(to), size(n)
	// Scaling in targets utilization (B6): its KV-usage effect comes
	// first; the queue effects that follow are its cost.
	if !up && usageN > 0 {
		u := usage / float64(usageN)
		b.effect(sigKVUsage, "", Increase, ptr(round(u, 6)), ptr(round(u*float64(n)/float64(to), 6)))
		rationale += fmt.Sprintf(" Mean KV usage %s × %d / %d = %s.", fmtNum(round(u, 6)), n, to, fmtNum(round(u*float64(n)/float64(to), 6)))
	}
	if qp, ok := e.maxSignal(t.replicas, sigQueue, p95); ok {
		b.effect(sigQueue, p95, dir(up), ptr(qp), finite(shift(qp, qn.WaitQuantile(0.95), q.WaitQuantile(0.95))))
	}
	w := round(waiting/float64(n), 6)
	b.effect(sigWaiting, "", dir(up), ptr(w), finite(shift(w, qn.MeanWaiting(), q.MeanWaiting())))
	return b.done(rationale), nil
}

// shift applies the model's change from now to after to the observed
// value: observed + (after − now), not below 0. When the model says the
// present count is unstable (now = +Inf) it has no baseline, and the
// estimate is the model's value after the change.
func shift(observed, now, after float64) float64 {
	if math.IsInf(now, 1) {
		return round(after, 6)
	}
	return round(math.Max(0, observed+after-now), 6)
}

// finite is v, or no estimate when the model has none: a step bounded
// below the load leaves the queue unstable, and its wait unbounded.
func finite(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return &v
}

// offeredLoad estimates the arrival rate of saturated replicas: their
// throughput λ plus the rate the queue grew at since the bottleneck
// became active. The queue began growing before that, so the estimate
// errs high, which the bound on each step absorbs.
func (e *env) offeredLoad(t *target, lambda, waiting float64) (float64, string) {
	var since time.Time
	for _, f := range t.findings {
		if !f.Since.IsZero() && (since.IsZero() || f.Since.Before(since)) {
			since = f.Since
		}
	}
	age := e.now.Sub(since).Seconds()
	if waiting <= 0 || since.IsZero() || age <= 0 {
		return lambda, fmt.Sprintf("at least the throughput %s/s (no queue growth to add)", fmtNum(round(lambda, 6)))
	}
	growth := waiting / age
	return lambda + growth, fmt.Sprintf("throughput %s/s + queue growth %s waiting / %ss = %s/s",
		fmtNum(round(lambda, 6)), fmtNum(round(waiting, 6)), fmtNum(round(age, 3)), fmtNum(round(lambda+growth, 6)))
}

func dir(up bool) string {
	if up {
		return Decrease
	}
	return Increase
}

// queueTarget is the p95 queue-wait target: the objective, or the TTFT
// target minus the worst observed prefill share (TTFT p95 − queue p95).
func (e *env) queueTarget(b *builder, insts []*collector.Instance) (float64, string) {
	if e.obj.QueueWaitP95Seconds > 0 {
		return e.obj.QueueWaitP95Seconds, "objective"
	}
	prefill, measured := -1.0, false
	for _, inst := range insts {
		// vLLM measures prefill time itself; TTFT p95 − queue p95 is a
		// stand-in that quantiles do not support (under a long queue it is
		// the spread of queue times, not prefill).
		if pp, ok := b.signalOf(inst, "llm_prefill_time_seconds", p95); ok {
			prefill, measured = math.Max(prefill, pp), true
			continue
		}
		// Under a backlog the difference is the spread of queue times, not
		// prefill: it is not used then.
		if w, ok := b.signalOf(inst, sigWaiting, ""); ok && w >= 1 {
			continue
		}
		tt, ok1 := b.signalOf(inst, sigTTFT, p95)
		qq, ok2 := b.signalOf(inst, sigQueue, p95)
		if ok1 && ok2 {
			prefill = math.Max(prefill, tt-qq)
		}
	}
	if prefill < 0 {
		b.note("no prefill time, nor TTFT and queue-time p95 without a backlog, to split the TTFT target: the whole TTFT target is taken as the queue-wait target")
		b.factor("target", 0.8, "queue-wait target bounded by the TTFT target only")
		return e.obj.TTFTP95Seconds, "TTFT target, no prefill time measured"
	}
	t := round(e.obj.TTFTP95Seconds-prefill, 6)
	if measured {
		return t, fmt.Sprintf("TTFT target %s − prefill time p95 %s", fmtNum(e.obj.TTFTP95Seconds), fmtNum(round(prefill, 6)))
	}
	return t, fmt.Sprintf("TTFT target %s − (TTFT p95 − queue p95) %s", fmtNum(e.obj.TTFTP95Seconds), fmtNum(round(prefill, 6)))
}

func (e *env) maxSignal(insts []*collector.Instance, name, quantile string) (float64, bool) {
	best, found := 0.0, false
	for _, inst := range insts {
		for _, s := range inst.Signals {
			if s.Name == name && s.Quantile == quantile && !math.IsNaN(s.Value) && (!found || s.Value > best) {
				best, found = s.Value, true
			}
		}
	}
	return best, found
}

// conservativeness sizes SGLang's --schedule-conservativeness.
func conservativeness(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, ok := b.number(t.action.Setting, t.action.Default)
	if !ok || cur <= 0 {
		return Recommendation{}, skipf("needs a positive %s", t.action.Setting)
	}
	if t.action.Direction == DirectionRaise {
		proposed := round(cur*1.3, 2)
		b.flag(fmtNum(cur), fmtNum(proposed))
		b.factor("method", 0.5, "step rule from the SGLang tuning guide (1.0 → 1.3), no model")
		if p, ok := b.signal(sigPreemptions, ""); ok {
			b.effect(sigPreemptions, "", Decrease, ptr(p), ptr(round(1.0/60, 6)))
		}
		return b.done(fmt.Sprintf("%s × 1.3 = %s, the SGLang guide's step for frequent retractions; about one retraction a minute (1/60 s) is acceptable there.", fmtNum(cur), fmtNum(proposed))), nil
	}
	u, ok1 := b.signal(sigKVUsage, "")
	w, ok2 := b.signal(sigWaiting, "")
	if !ok1 || !ok2 {
		return Recommendation{}, skipf("needs %s and %s", sigKVUsage, sigWaiting)
	}
	if u >= kvTarget || w <= 0 {
		return Recommendation{}, skipf("applies only with KV usage < 0.9 and a queue (usage %s, waiting %s)", fmtNum(u), fmtNum(w))
	}
	proposed := math.Max(0.3, math.Floor(cur*u/kvTarget*100)/100)
	if proposed >= cur {
		return Recommendation{}, skipf("already at the guide's floor 0.3")
	}
	b.flag(fmtNum(cur), fmtNum(proposed))
	b.factor("method", 0.8, "admission estimate scaled proportionally to usage")
	b.effect(sigKVUsage, "", Increase, ptr(u), ptr(kvTarget))
	b.effect(sigWaiting, "", Decrease, ptr(w), nil)
	return b.done(fmt.Sprintf("Admission reserves ∝ conservativeness; usage %s against the 0.9 target gives max(0.3, ⌊%s × %s / 0.9⌋₀.₀₁) = %s.", fmtNum(u), fmtNum(cur), fmtNum(u), fmtNum(proposed))), nil
}

// frontendWorkers doubles the processes in front of the engine that parse
// HTTP, tokenize and detokenize (B13). A step rule: how much of the gap is
// CPU contention that more processes remove is not observable from the
// engines' metrics, so no estimate is given.
func frontendWorkers(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	cur, ok := b.number(t.action.Setting, t.action.Default)
	if !ok || cur < 1 {
		return Recommendation{}, skipf("needs %s of at least 1", t.action.Setting)
	}
	proposed := cur * 2
	b.flag(fmtNum(cur), fmtNum(proposed))
	b.factor("method", 0.5, "step rule (twice the processes), no model of the frontend's CPU")
	g, ok := b.signal(signals.FrontendGap, "")
	b.effect(signals.FrontendGap, "", Decrease, ptrIf(g, ok), nil)
	return b.done(fmt.Sprintf("%s × 2 = %s processes share the tokenization and HTTP work that holds requests outside the engine; each costs a CPU core.", fmtNum(cur), fmtNum(proposed))), nil
}

// manual fills an operational recommendation.
func manual(e *env, t *target) (Recommendation, error) {
	b := e.newBuilder(t, t.inst)
	b.r.Action = Action{Kind: KindManual, Note: t.action.Note}
	b.factor("method", 0.5, "operational change, no model of its effect")
	var sig, d string
	switch t.def.ID {
	case "investigate_errors":
		sig, d = sigErrorRatio, Decrease
	case "prefix_aware_routing":
		sig, d = sigPrefixHit, Increase
	default:
		sig, d = sigWaiting, Decrease
	}
	v, ok := b.signal(sig, "")
	b.effect(sig, "", d, ptrIf(v, ok), nil)
	var vals []string
	for _, f := range t.findings {
		vals = append(vals, fmt.Sprintf("%s (%s = %s)", f.Bottleneck, f.Rule, fmtNum(f.Value)))
	}
	return b.done(t.def.Summary + " Detected: " + strings.Join(vals, ", ") + "."), nil
}
