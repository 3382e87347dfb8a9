package recommender

import (
	"reflect"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

// TestObjectivesOverride checks that the request's ITL target replaces the
// configured one: B* = ⌊(0.04 − 0.01)/0.0003⌋ = 100 instead of 133.
func TestObjectivesOverride(t *testing.T) {
	inst := &collector.Instance{
		Instance: "gpu-1:8000", Engine: signals.EngineVLLM, Model: llama,
		Settings: settings(collector.SettingFromMetrics, "max_num_seqs", "256"),
		Signals:  []signals.Value{sig(sigRunning, "", 200), sig(sigITL, p95, 0.07)},
	}
	in := Input{
		Instances: []*collector.Instance{inst},
		History:   map[string][]Point{"gpu-1:8000": linearHistory(0.01, 0.0003, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200)},
		Findings:  []Finding{finding("B5", "LLMDecodeBoundITL", inst, 0.07, "lower_max_num_seqs")},
	}
	r := newTestRecommender(t, config.DefaultRecommenderConfig())
	for _, tc := range []struct {
		itl  float64
		want string
	}{{0, "133"}, {0.04, "100"}} {
		in.Objectives.ITLP95Seconds = tc.itl
		recs := r.Analyze(testNow, in).Recommendations
		if len(recs) != 1 || recs[0].Action.Proposed != tc.want {
			t.Errorf("ITL target %v: got %+v, want max_num_seqs %s", tc.itl, recs, tc.want)
		}
	}
}

// TestB1B3Consistent checks that B1 and B3 on one instance never push
// max_num_seqs in opposite directions: both are bounded by the same C_kv.
func TestB1B3Consistent(t *testing.T) {
	inst := vllmB1()
	inst.Settings["max_num_seqs"] = collector.Setting{Value: "256", Source: collector.SettingFromMetrics}
	// C_kv = min(⌊0.9 × 327680 / 1200⌋ = 245, ⌊(√(327680 / 1200 + 1) − 1)²⌋ = 241)
	// = 241 < 256: B1 lowers to 241, B3 has nothing to raise.
	rep := newTestRecommender(t, config.DefaultRecommenderConfig()).Analyze(testNow, Input{
		Instances: []*collector.Instance{inst},
		Findings: []Finding{
			finding("B3", "LLMConcurrencyCapBound", inst, 200, "raise_max_num_seqs"),
			finding("B1", "LLMKVCachePressure", inst, 2, "lower_max_num_seqs"),
		},
	})
	if len(rep.Recommendations) != 1 || rep.Recommendations[0].ID != "lower_max_num_seqs" || rep.Recommendations[0].Action.Proposed != "241" {
		t.Fatalf("got %+v", rep.Recommendations)
	}
	wantSkip := []Skip{{ID: "raise_max_num_seqs", Instance: "gpu-0:8000", Engine: "vllm", Model: llama, Reason: "the computed cap 241 is not above the current 256"}}
	if !reflect.DeepEqual(rep.Skipped, wantSkip) {
		t.Errorf("skipped %+v, want %+v", rep.Skipped, wantSkip)
	}
}

// TestTriageConflictSGLang checks that B1's raise of
// --schedule-conservativeness wins over B2's lowering on one instance.
func TestTriageConflictSGLang(t *testing.T) {
	inst := &collector.Instance{
		Instance: "sg:30000", Engine: signals.EngineSGLang, Model: "m",
		Settings: settings(collector.SettingFromProbe, "schedule_conservativeness", "1.0"),
		Signals:  []signals.Value{sig(sigKVUsage, "", 0.8), sig(sigWaiting, "", 5), sig(sigPreemptions, "", 0.5)},
	}
	// B1: 1.0 × 1.3 = 1.3. B2: max(0.3, ⌊1.0 × 0.8 / 0.9 × 100⌋ / 100) = 0.88. B1 comes first.
	rep := newTestRecommender(t, config.DefaultRecommenderConfig()).Analyze(testNow, Input{
		Instances: []*collector.Instance{inst},
		Findings: []Finding{
			finding("B2", "LLMRequestQueueing", inst, 5, "lower_schedule_conservativeness"),
			finding("B1", "LLMKVCachePressure", inst, 0.5, "raise_schedule_conservativeness"),
		},
	})
	if len(rep.Recommendations) != 1 {
		t.Fatalf("got %+v", rep.Recommendations)
	}
	got := rep.Recommendations[0]
	if got.ID != "raise_schedule_conservativeness" || got.Action.Proposed != "1.3" || got.Rank != 1 {
		t.Errorf("winner %+v", got)
	}
	wantNotes := []string{"supersedes lower_schedule_conservativeness (B2) proposing 1 → 0.88: B1 comes first in the triage order"}
	if !reflect.DeepEqual(got.Notes, wantNotes) {
		t.Errorf("notes %q, want %q", got.Notes, wantNotes)
	}
	wantSkip := []Skip{{ID: "lower_schedule_conservativeness", Instance: "sg:30000", Engine: "sglang", Model: "m", Reason: "conflicts with raise_schedule_conservativeness (B1) on the same knob; B1 comes first in the triage order"}}
	if !reflect.DeepEqual(rep.Skipped, wantSkip) {
		t.Errorf("skipped %+v, want %+v", rep.Skipped, wantSkip)
	}
}

// TestApplyConfigConcurrent runs passes while the configuration changes;
// run with -race.
func TestApplyConfigConcurrent(t *testing.T) {
	r := newTestRecommender(t, config.DefaultRecommenderConfig())
	inst := vllmB1()
	in := Input{Instances: []*collector.Instance{inst}, Findings: []Finding{finding("B1", "LLMKVCachePressure", inst, 2, "raise_gpu_memory_utilization")}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			if err := r.ApplyConfig(llamaConfig()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		r.Analyze(testNow, in)
	}
	<-done
	if got := r.Analyze(testNow, in).Recommendations; len(got) != 1 || got[0].Action.Proposed != "0.95" {
		t.Errorf("after ApplyConfig: %+v", got)
	}
	bad := config.DefaultRecommenderConfig()
	bad.Memory.MaxFraction = 0
	if err := r.ApplyConfig(bad); err == nil || !strings.Contains(err.Error(), "recommender.memory.max_fraction") {
		t.Errorf("invalid config accepted: %v", err)
	}
}
