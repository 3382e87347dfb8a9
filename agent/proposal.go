package agent

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/workflow"
)

// ProposalRequest asks for a workflow carrying a current recommendation.
type ProposalRequest struct {
	// Recommendation is the id of a current recommendation.
	Recommendation string
	// Instance picks the recommendation of this instance when several
	// share the id.
	Instance string
	// Instances is the pool. Every one must have a current recommendation
	// with the same id and the same proposed value: a value is applied
	// only where it was computed. Empty means the chosen recommendation's
	// instance and every other instance whose recommendation is the same.
	Instances []string
	// Stages replace the default stages (one canary, half, all).
	Stages []workflow.Stage
}

// ProposalError says why no workflow can be proposed, naming the request
// field at fault. NotFound means no current recommendation matched.
type ProposalError struct {
	Field    string
	Msg      string
	NotFound bool
}

func (e *ProposalError) Error() string { return e.Field + ": " + e.Msg }

func proposalErr(field, format string, args ...any) *ProposalError {
	return &ProposalError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// capacityTolerance is how far apart the KV-cache capacities of two
// instances may be for one to be the other's baseline.
const capacityTolerance = 0.1

// Propose turns a current recommendation into a workflow request: the
// change, the pool it was computed for, what each pool instance has now,
// and the unchanged instances of the same kind to validate against.
func Propose(rep recommender.Report, snap *collector.Snapshot, req ProposalRequest) (workflow.CreateRequest, error) {
	if req.Recommendation == "" {
		return workflow.CreateRequest{}, proposalErr("recommendation", "is required: the id of a current recommendation (GET /api/v1/recommendations)")
	}
	if snap == nil {
		return workflow.CreateRequest{}, proposalErr("recommendation", "no collection has completed yet; try again after the first one")
	}
	var matches []recommender.Recommendation
	for _, rec := range rep.Recommendations {
		if rec.ID == req.Recommendation && (req.Instance == "" || rec.Instance == req.Instance) {
			matches = append(matches, rec)
		}
	}
	switch {
	case len(matches) == 0:
		e := proposalErr("recommendation", "no current recommendation %q%s; GET /api/v1/recommendations lists them", req.Recommendation, forInstance(req.Instance))
		e.NotFound = true
		return workflow.CreateRequest{}, e
	case len(matches) > 1 && len(req.Instances) == 0:
		var insts []string
		for _, m := range matches {
			insts = append(insts, m.Instance)
		}
		return workflow.CreateRequest{}, proposalErr("instance", "%d current recommendations have the id %q (on %s); name the instance", len(matches), req.Recommendation, strings.Join(insts, ", "))
	}
	rec := matches[0]
	if len(req.Instances) > 0 && req.Instance == "" {
		// The pool names the instances; any of their recommendations
		// stands for all, since all must be the same.
		if i := slices.IndexFunc(matches, func(m recommender.Recommendation) bool { return m.Instance == req.Instances[0] }); i >= 0 {
			rec = matches[i]
		}
	}
	if rec.Action.Kind != recommender.KindFlag || rec.Instance == "" {
		return workflow.CreateRequest{}, proposalErr("recommendation", "%s is a %s action; workflows carry engine flag changes of one instance's settings", rec.ID, rec.Action.Kind)
	}
	same := map[string]recommender.Recommendation{}
	for _, r := range rep.Recommendations {
		if r.ID == rec.ID && r.Engine == rec.Engine && r.Model == rec.Model && r.Action.Kind == recommender.KindFlag && r.Instance != "" {
			same[r.Instance] = r
		}
	}
	pool, err := proposalPool(rec, same, snap, req.Instances)
	if err != nil {
		return workflow.CreateRequest{}, err
	}
	change := changeOf(rec)
	cr := workflow.CreateRequest{Change: change, Pool: pool, Stages: req.Stages}
	for _, inst := range pool {
		if v, src, ok := currentValue(same[inst], snap.Instance(inst)); ok {
			cr.Current = append(cr.Current, workflow.CurrentValue{Instance: inst, Value: v, Source: src})
		}
	}
	cr.Baseline = peers(snap, rec, pool)
	return cr, nil
}

func forInstance(instance string) string {
	if instance == "" {
		return ""
	}
	return " for instance " + instance
}

// proposalPool is the requested pool, each instance checked to have the
// same recommendation with the same value, or by default the chosen
// instance and every instance that has the same recommendation computed
// from the same known current value.
func proposalPool(rec recommender.Recommendation, same map[string]recommender.Recommendation, snap *collector.Snapshot, want []string) ([]string, error) {
	if len(want) == 0 {
		pool := []string{rec.Instance}
		v, _, known := currentValue(rec, snap.Instance(rec.Instance))
		for _, inst := range sortedKeys(same) {
			other := same[inst]
			if inst == rec.Instance || other.Action.Proposed != rec.Action.Proposed || !known {
				continue
			}
			if w, _, ok := currentValue(other, snap.Instance(inst)); ok && workflow.SameValue(v, w) {
				pool = append(pool, inst)
			}
		}
		return pool, nil
	}
	var why []string
	for _, inst := range want {
		r, ok := same[inst]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("%s has no current %s recommendation (its bottleneck is not active there, or it is another engine or model)", inst, rec.ID))
		case r.Action.Proposed != rec.Action.Proposed:
			why = append(why, fmt.Sprintf("%s was computed %s, not %s", inst, r.Action.Proposed, rec.Action.Proposed))
		}
	}
	if len(why) > 0 {
		return nil, proposalErr("instances", "a value is applied only where it was computed: %s; start one workflow per value", strings.Join(why, "; "))
	}
	return want, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// currentValue is what the instance has now, from the recommendation
// (which read it from the instance's settings) or the settings themselves.
func currentValue(rec recommender.Recommendation, inst *collector.Instance) (value, source string, ok bool) {
	if inst == nil || rec.Action.Setting == "" {
		return "", "", false
	}
	s, ok := inst.Settings[rec.Action.Setting]
	if !ok || s.Value == "" {
		return "", "", false
	}
	return s.Value, s.Source, true
}

// peers are the instances of the same engine and model outside the pool
// whose setting has the pool's value and whose KV-cache capacity is within
// capacityTolerance of the pool's: the baseline validation compares with.
func peers(snap *collector.Snapshot, rec recommender.Recommendation, pool []string) []string {
	var value string
	var kv float64
	for _, inst := range pool {
		if in := snap.Instance(inst); in != nil {
			if s, ok := in.Settings[rec.Action.Setting]; ok && value == "" {
				value = s.Value
			}
			if kv == 0 {
				kv = capacity(in)
			}
		}
	}
	var out []string
	for _, in := range snap.Instances {
		if in.Engine != rec.Engine || in.Model != rec.Model || slices.Contains(pool, in.Instance) {
			continue
		}
		if s, ok := in.Settings[rec.Action.Setting]; ok && value != "" && !workflow.SameValue(value, s.Value) {
			continue
		}
		if c := capacity(in); kv > 0 && c > 0 && math.Abs(kv-c) > capacityTolerance*math.Max(kv, c) {
			continue
		}
		out = append(out, in.Instance)
	}
	return out
}

func capacity(in *collector.Instance) float64 {
	for _, s := range in.Signals {
		if s.Name == signals.KVCacheCapacity {
			return s.Value
		}
	}
	return 0
}

// changeOf carries a recommendation into a workflow change.
func changeOf(rec recommender.Recommendation) workflow.Change {
	c := workflow.Change{
		RecommendationID: rec.ID, Engine: rec.Engine, Model: rec.Model, Kind: rec.Action.Kind,
		Flag: rec.Action.Flag, Setting: rec.Action.Setting, From: rec.Action.Current, To: rec.Action.Proposed, Unit: rec.Action.Unit,
		Risk: rec.Risk, Evidence: rec.Rationale,
	}
	for _, e := range rec.Effects {
		c.Targets = append(c.Targets, workflow.Target{Signal: e.Signal, Quantile: e.Quantile, Expected: workflow.Direction(e.Direction)})
	}
	return c
}
