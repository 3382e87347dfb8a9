package agent

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/workflow"
)

func flagRec(inst, current, proposed string) recommender.Recommendation {
	return recommender.Recommendation{
		ID: "lower_max_num_seqs", Instance: inst, Engine: "vllm", Model: "llama",
		Action:  recommender.Action{Kind: recommender.KindFlag, Flag: "--max-num-seqs", Setting: "max_num_seqs", Current: current, Proposed: proposed},
		Effects: []recommender.Effect{{Signal: "llm_preemptions_per_second", Direction: "decrease"}},
	}
}

func instance(name, engine, seqs string, capacity float64) *collector.Instance {
	in := &collector.Instance{Instance: name, Engine: engine, Model: "llama", Settings: collector.Settings{}}
	if seqs != "" {
		in.Settings["max_num_seqs"] = collector.Setting{Value: seqs, Source: collector.SettingFromConfig}
	}
	if capacity > 0 {
		in.Signals = []signals.Value{{Name: signals.KVCacheCapacity, Value: capacity}}
	}
	return in
}

func TestPropose(t *testing.T) {
	snap := &collector.Snapshot{Instances: []*collector.Instance{
		instance("a", "vllm", "256", 100000),
		instance("b", "vllm", "", 100000),    // value unknown: the executor must read it
		instance("c", "vllm", "256", 104000), // computed another value
		instance("d", "vllm", "256", 101000), // healthy peer of the same kind
		instance("e", "vllm", "128", 100000), // peer with another setting
		instance("f", "vllm", "256", 400000), // peer with four times the KV cache
		instance("g", "sglang", "256", 100000),
		instance("h", "vllm", "256", 100000),
	}}
	rep := recommender.Report{Recommendations: []recommender.Recommendation{
		flagRec("a", "256", "200"), flagRec("b", "unknown", "200"), flagRec("c", "256", "180"), flagRec("h", "256", "200"),
		{ID: "scale_out", Engine: "vllm", Model: "llama", Action: recommender.Action{Kind: recommender.KindReplicas, From: 4, To: 5}},
	}}
	cases := []struct {
		name     string
		req      ProposalRequest
		pool     []string
		current  []workflow.CurrentValue
		baseline []string
		errField string
		notFound bool
		errText  string
	}{
		{
			name: "default pool is where the same value was computed from the same known value",
			req:  ProposalRequest{Recommendation: "lower_max_num_seqs", Instance: "a"},
			pool: []string{"a", "h"}, current: []workflow.CurrentValue{{Instance: "a", Value: "256", Source: "config"}, {Instance: "h", Value: "256", Source: "config"}},
			baseline: []string{"b", "c", "d"},
		},
		{
			name: "an unknown value is left to the executor",
			req:  ProposalRequest{Recommendation: "lower_max_num_seqs", Instance: "b", Instances: []string{"b", "a"}},
			pool: []string{"b", "a"}, current: []workflow.CurrentValue{{Instance: "a", Value: "256", Source: "config"}},
			baseline: []string{"c", "d", "h"},
		},
		{
			name: "one instance asked for",
			req:  ProposalRequest{Recommendation: "lower_max_num_seqs", Instance: "c", Instances: []string{"c"}},
			pool: []string{"c"}, current: []workflow.CurrentValue{{Instance: "c", Value: "256", Source: "config"}},
			baseline: []string{"a", "b", "d", "h"},
		},
		{
			name:     "a value computed for another instance",
			req:      ProposalRequest{Recommendation: "lower_max_num_seqs", Instance: "a", Instances: []string{"a", "c"}},
			errField: "instances", errText: "c was computed 180, not 200",
		},
		{
			name:     "an instance without the recommendation",
			req:      ProposalRequest{Recommendation: "lower_max_num_seqs", Instance: "a", Instances: []string{"a", "d"}},
			errField: "instances", errText: "d has no current lower_max_num_seqs recommendation",
		},
		{
			name:     "several match",
			req:      ProposalRequest{Recommendation: "lower_max_num_seqs"},
			errField: "instance", errText: "4 current recommendations",
		},
		{name: "unknown id", req: ProposalRequest{Recommendation: "nope"}, errField: "recommendation", notFound: true},
		{name: "no id", req: ProposalRequest{}, errField: "recommendation", errText: "is required"},
		{name: "not a flag", req: ProposalRequest{Recommendation: "scale_out"}, errField: "recommendation", errText: "replicas action"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cr, err := Propose(rep, snap, tc.req)
			if tc.errField != "" {
				var perr *ProposalError
				if !errors.As(err, &perr) || perr.Field != tc.errField || perr.NotFound != tc.notFound || !strings.Contains(perr.Msg, tc.errText) {
					t.Fatalf("err = %#v, want field %s, not found %v, %q", err, tc.errField, tc.notFound, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cr.Pool, tc.pool) || !slices.Equal(cr.Current, tc.current) || !slices.Equal(cr.Baseline, tc.baseline) {
				t.Fatalf("pool %v current %v baseline %v, want %v %v %v", cr.Pool, cr.Current, cr.Baseline, tc.pool, tc.current, tc.baseline)
			}
			if c := cr.Change; c.Flag != "--max-num-seqs" || c.Setting != "max_num_seqs" || c.To == "" || len(c.Targets) != 1 {
				t.Fatalf("change %+v", c)
			}
		})
	}
}
