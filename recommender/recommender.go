package recommender

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
)

// strategy computes one recommendation for one target, or returns an
// error saying why it does not apply.
type strategy func(e *env, t *target) (Recommendation, error)

// strategies maps every catalog id to the function that sizes it.
var strategies = map[string]strategy{
	"raise_gpu_memory_utilization":    raiseMemory,
	"raise_mem_fraction_static":       raiseMemory,
	"fp8_kv_cache":                    fp8KVCache,
	"fp8_weights":                     fp8Weights,
	"int4_awq_weights":                int4AWQWeights,
	"lower_max_num_seqs":              concurrencyCap,
	"raise_max_num_seqs":              concurrencyCap,
	"raise_max_running_requests":      concurrencyCap,
	"raise_max_concurrent_requests":   concurrencyCap,
	"raise_tensor_parallel":           tensorParallel,
	"raise_max_num_batched_tokens":    batchedTokens,
	"lower_max_num_batched_tokens":    batchedTokens,
	"long_prefill_threshold":          longPrefillThreshold,
	"enable_prefix_caching":           enablePrefixCaching,
	"prefix_aware_routing":            manual,
	"load_aware_routing":              manual,
	"investigate_errors":              manual,
	"raise_schedule_conservativeness": conservativeness,
	"lower_schedule_conservativeness": conservativeness,
	"raise_frontend_workers":          frontendWorkers,
	"lower_num_speculative_tokens":    speculativeTokens,
	"disable_speculative_decoding":    speculativeTokens,
	"enable_speculative_decoding":     enableSpeculative,
	"scale_out":                       replicas,
	"scale_in":                        replicas,
}

// Options build a Recommender.
type Options struct {
	// Catalog defaults to the embedded catalog.
	Catalog *Catalog
	// Config defaults to DefaultConfig().
	Config *config.RecommenderConfig
}

// Recommender turns findings into ranked recommendations. It is safe for
// concurrent use.
type Recommender struct {
	mtx sync.RWMutex
	cat *Catalog
	cfg config.RecommenderConfig
}

// ErrNoStrategy is returned when a catalog id has no strategy.
var ErrNoStrategy = errors.New("no strategy for recommendation")

// New builds a Recommender.
func New(o Options) (*Recommender, error) {
	cat := o.Catalog
	if cat == nil {
		var err error
		if cat, err = EmbeddedCatalog(); err != nil {
			return nil, fmt.Errorf("loading the embedded catalog: %w", err)
		}
	}
	for _, d := range cat.Definitions {
		if _, ok := strategies[d.ID]; !ok {
			return nil, fmt.Errorf("%w %q", ErrNoStrategy, d.ID)
		}
	}
	r := &Recommender{cat: cat, cfg: config.DefaultRecommenderConfig()}
	if o.Config != nil {
		if err := r.ApplyConfig(*o.Config); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ApplyConfig puts cfg in force for the next Analyze. See PrepareConfig.
func (r *Recommender) ApplyConfig(cfg config.RecommenderConfig) error {
	commit, err := r.PrepareConfig(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// PrepareConfig checks cfg without touching the one in force; the
// returned commit puts it in force.
func (r *Recommender) PrepareConfig(cfg config.RecommenderConfig) (commit func(), err error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid recommender configuration: %w", errors.Join(errs...))
	}
	cfg.Models = slices.Clone(cfg.Models)
	cfg.Memory.ReservedBytes = maps.Clone(cfg.Memory.ReservedBytes)
	return func() {
		r.mtx.Lock()
		defer r.mtx.Unlock()
		r.cfg = cfg
	}, nil
}

// Analyze returns the ranked recommendations and, for every
// recommendation a finding asked for that was not produced, why.
func (r *Recommender) Analyze(now time.Time, in Input) Report {
	r.mtx.RLock()
	cfg := r.cfg
	r.mtx.RUnlock()
	e := &env{now: now, in: in, cfg: cfg, cat: r.cat, obj: cfg.Objectives, models: configuredModels(cfg)}
	maps.Copy(e.models, in.Models)
	if in.Objectives.TTFTP95Seconds > 0 {
		e.obj.TTFTP95Seconds = in.Objectives.TTFTP95Seconds
	}
	if in.Objectives.ITLP95Seconds > 0 {
		e.obj.ITLP95Seconds = in.Objectives.ITLP95Seconds
	}
	if in.Objectives.QueueWaitP95Seconds > 0 {
		e.obj.QueueWaitP95Seconds = in.Objectives.QueueWaitP95Seconds
	}
	targets, rep := e.targets()
	var recs []Recommendation
	keys := map[string]*target{}
	for _, t := range targets {
		rec, err := strategies[t.def.ID](e, t)
		if err != nil {
			rep.Skipped = append(rep.Skipped, skipOf(t, err.Error()))
			continue
		}
		recs = append(recs, rec)
		keys[recKey(rec)] = t
	}
	recs, dropped := resolve(recs, keys)
	rep.Skipped = append(rep.Skipped, dropped...)
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := keys[recKey(recs[i])], keys[recKey(recs[j])]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		// For the same bottleneck, a change the engine or the fleet can
		// make comes before a manual action: a manual action (investigate
		// errors, routing) names where to look, the change acts (B9 is
		// usually downstream of B1/B2, docs/bottlenecks.md, triage order).
		if ma, mb := recs[i].Action.Kind == KindManual, recs[j].Action.Kind == KindManual; ma != mb {
			return mb
		}
		// A change that its own estimate says falls short (preemptions
		// fall but do not stop) comes after one that is expected to end
		// the bottleneck: applying the first would leave it firing.
		if a.short != b.short {
			return b.short
		}
		if a.order != b.order {
			return a.order < b.order
		}
		if recs[i].Confidence != recs[j].Confidence {
			return recs[i].Confidence > recs[j].Confidence
		}
		return recKey(recs[i]) < recKey(recs[j])
	})
	for i := range recs {
		recs[i].Rank = i + 1
	}
	sort.Slice(rep.Skipped, func(i, j int) bool {
		a, b := rep.Skipped[i], rep.Skipped[j]
		if a.Instance != b.Instance {
			return a.Instance < b.Instance
		}
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		return a.ID < b.ID
	})
	rep.Recommendations = recs
	return rep
}

func recKey(r Recommendation) string {
	return r.Instance + "\xff" + r.Engine + "\xff" + r.Model + "\xff" + r.ID
}

func skipOf(t *target, reason string) Skip {
	s := Skip{ID: t.def.ID, Engine: t.engine, Model: t.model, Reason: reason}
	if t.inst != nil {
		s.Instance = t.inst.Instance
	}
	return s
}

// targets groups the findings' recommendation ids by instance (or, for
// replica actions, by engine and model).
func (e *env) targets() ([]*target, Report) {
	var rep Report
	byName := map[string]*collector.Instance{}
	groups := map[string][]*collector.Instance{}
	for _, inst := range e.in.Instances {
		if inst == nil {
			continue
		}
		byName[inst.Instance] = inst
		k := inst.Engine + "\xff" + inst.Model
		groups[k] = append(groups[k], inst)
	}
	for _, g := range groups {
		sort.Slice(g, func(i, j int) bool { return g[i].Instance < g[j].Instance })
	}
	out := map[string]*target{}
	var order []string
	for _, f := range e.in.Findings {
		inst := byName[f.Instance]
		for pos, id := range f.Recommend {
			s := Skip{ID: id, Instance: f.Instance, Engine: f.Engine, Model: f.Model}
			def, ok := e.cat.Lookup(id)
			if !ok {
				s.Reason = "unknown recommendation id"
				rep.Skipped = append(rep.Skipped, s)
				continue
			}
			if inst == nil {
				s.Reason = "instance not in the snapshot"
				rep.Skipped = append(rep.Skipped, s)
				continue
			}
			s.Engine, s.Model = inst.Engine, inst.Model
			a, ok := def.Engines[inst.Engine]
			switch {
			case !ok:
				s.Reason = fmt.Sprintf("engine %q not described in the catalog", inst.Engine)
			case !a.Applicable():
				s.Reason = "not applicable to " + inst.Engine + ": " + a.NotApplicable
			case !slices.Contains(def.Bottlenecks, f.Bottleneck):
				s.Reason = fmt.Sprintf("does not address %s", f.Bottleneck)
			}
			if s.Reason != "" {
				if def.Kind == KindReplicas {
					s.Instance = ""
				}
				rep.Skipped = append(rep.Skipped, s)
				continue
			}
			key := inst.Instance + "\xff" + id
			if def.Kind == KindReplicas {
				key = "\xff" + inst.Engine + "\xff" + inst.Model + "\xff" + id
			}
			t := out[key]
			if t == nil {
				t = &target{def: def, action: a, engine: inst.Engine, model: inst.Model, order: pos, rank: len(e.cat.Triage) + 1}
				if def.Kind == KindReplicas {
					t.replicas = groups[inst.Engine+"\xff"+inst.Model]
				} else {
					t.inst = inst
				}
				out[key] = t
				order = append(order, key)
			}
			t.findings = append(t.findings, f)
			if !t.has(f.Bottleneck) {
				t.bottlenecks = append(t.bottlenecks, f.Bottleneck)
			}
			t.order = min(t.order, pos)
			t.rank = min(t.rank, e.cat.TriageRank(f.Bottleneck))
		}
	}
	sort.Strings(order)
	targets := make([]*target, 0, len(order))
	for _, k := range order {
		t := out[k]
		sort.SliceStable(t.bottlenecks, func(i, j int) bool {
			return e.cat.TriageRank(t.bottlenecks[i]) < e.cat.TriageRank(t.bottlenecks[j])
		})
		sort.SliceStable(t.findings, func(i, j int) bool {
			return e.cat.TriageRank(t.findings[i].Bottleneck) < e.cat.TriageRank(t.findings[j].Bottleneck)
		})
		targets = append(targets, t)
	}
	return targets, rep
}

// resolve keeps, for every knob (an instance's setting, or a model's
// replica count), the proposal whose most urgent bottleneck comes first in
// the triage order, and drops the others with a note on the winner.
func resolve(recs []Recommendation, keys map[string]*target) ([]Recommendation, []Skip) {
	knob := func(r Recommendation) string {
		if r.Action.Kind == KindReplicas {
			return "replicas\xff" + r.Engine + "\xff" + r.Model
		}
		if r.Action.Kind == KindFlag {
			return "flag\xff" + r.Instance + "\xff" + r.Action.Setting
		}
		return "manual\xff" + recKey(r)
	}
	best := map[string]int{}
	for i, r := range recs {
		k := knob(r)
		j, ok := best[k]
		if !ok || keys[recKey(r)].rank < keys[recKey(recs[j])].rank {
			best[k] = i
		}
	}
	var kept []Recommendation
	var dropped []Skip
	for i, r := range recs {
		w := best[knob(r)]
		if w == i {
			continue
		}
		wr := &recs[w]
		wr.Notes = append(wr.Notes, fmt.Sprintf("supersedes %s (%s) proposing %s: %s comes first in the triage order", r.ID, r.Bottlenecks[0], proposal(r), wr.Bottlenecks[0]))
		dropped = append(dropped, skipOf(keys[recKey(r)], fmt.Sprintf("conflicts with %s (%s) on the same knob; %s comes first in the triage order", wr.ID, wr.Bottlenecks[0], wr.Bottlenecks[0])))
	}
	for i, r := range recs {
		if best[knob(r)] == i {
			kept = append(kept, r)
		}
	}
	return kept, dropped
}

func proposal(r Recommendation) string {
	if r.Action.Kind == KindReplicas {
		return fmt.Sprintf("%d → %d replicas", r.Action.From, r.Action.To)
	}
	return r.Action.Current + " → " + r.Action.Proposed
}

// configuredModels returns the configured models by name.
func configuredModels(c config.RecommenderConfig) map[string]Model {
	out := make(map[string]Model, len(c.Models))
	for _, m := range c.Models {
		gpu := GPU{MemoryBytes: m.GPUMemoryBytes, Type: m.GPU}
		if fp8, known := config.GPUHasFP8(m.GPU); known {
			gpu.FP8 = &fp8
		}
		out[m.Name] = Model{
			Shape:              ModelShape{Parameters: m.Parameters, Layers: m.Layers, KVHeads: m.KVHeads, HeadDim: m.HeadDim, DTypeBytes: m.DTypeBytes},
			GPU:                gpu,
			TensorParallelSize: m.TensorParallelSize,
		}
	}
	return out
}
