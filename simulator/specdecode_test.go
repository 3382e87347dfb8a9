package simulator

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSpecTokensPerStep(t *testing.T) {
	for _, c := range []struct {
		alpha float64
		k     int
		want  float64
	}{
		{0.5, 0, 1},
		{0, 4, 1},
		{0.5, 1, 1.5},
		{0.5, 3, 1 + 0.5 + 0.25 + 0.125},
		{0.8, 4, 1 + 0.8 + 0.64 + 0.512 + 0.4096},
	} {
		if got := specTokensPerStep(c.alpha, c.k); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("α=%v k=%d: %v, want %v", c.alpha, c.k, got, c.want)
		}
	}
}

// TestSpeculativeDecodingPhysics checks the regimes speculative decoding
// has: it shortens ITL at low load with a good acceptance, and lengthens it
// with a poor one on a draft model or with a batch large enough that the
// verify pass is compute-bound.
func TestSpeculativeDecodingPhysics(t *testing.T) {
	t.Parallel()
	const gpu = `gpu: {memory_gib: 48, bandwidth_gbps: 864, tflops: 181, reserved_gib: 3}`
	server := func(rate, alpha float64, spec string) string {
		return fmt.Sprintf(`engine: vllm
  %s
  settings: {%s}
  workload: {rate: %v, spec_acceptance: %v, prompt_tokens: {mean: 400, cv: 0.5}, output_tokens: {mean: 500, cv: 0.4}, max_tokens: 2048, timeout: 600s}`, gpu, spec, rate, alpha)
	}
	for _, c := range []struct {
		name        string
		rate, alpha float64
		spec        string
		faster      bool
	}{
		{"low load, high acceptance, n-gram", 0.2, 0.7, "num_speculative_tokens: 4", true},
		{"moderate load, low acceptance, draft model", 1.5, 0.15, "num_speculative_tokens: 5, speculative_method: draft_model", false},
		{"high load, compute-bound verify", 2.5, 0.3, "num_speculative_tokens: 8", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			off := steady(t, server(c.rate, c.alpha, ""), 5*time.Minute, 15*time.Minute)
			on := steady(t, server(c.rate, c.alpha, c.spec), 5*time.Minute, 15*time.Minute)
			if got := on.itl.Mean() < off.itl.Mean(); got != c.faster {
				t.Errorf("ITL mean with speculation %.4f, without %.4f: faster = %v, want %v", on.itl.Mean(), off.itl.Mean(), got, c.faster)
			}
		})
	}
}

func TestSpecDecodeCounters(t *testing.T) {
	cfg := oneServer(t, `engine: vllm
  settings: {num_speculative_tokens: 3}
  workload: {rate: 2, spec_acceptance: 0.6, prompt_tokens: {mean: 200}, output_tokens: {mean: 200}, max_tokens: 1024, timeout: 600s}`)
	f, err := NewFleet(cfg, testStart)
	if err != nil {
		t.Fatal(err)
	}
	s := f.Servers()[0]
	s.Advance(testStart.Add(5 * time.Minute))
	st := s.State()
	// Accepted per draft token is (E − 1)/k and accepted per draft E − 1.
	e := specTokensPerStep(0.6, 3)
	if got := st.Counters.SpecAccepted / st.Counters.SpecDraftTokens; math.Abs(got-(e-1)/3) > 1e-9 {
		t.Errorf("acceptance ratio %v, want %v", got, (e-1)/3)
	}
	var buf bytes.Buffer
	if err := s.WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vllm:spec_decode_num_drafts_total", "vllm:spec_decode_num_draft_tokens_total",
		"vllm:spec_decode_num_accepted_tokens_total", `vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",position="2"}`} {
		if !strings.Contains(buf.String(), name) {
			t.Errorf("exposition lacks %s", name)
		}
	}
	// Off: no speculative-decoding family at all, as vLLM registers none.
	if err := s.UpdateSettings([]byte(`{"num_speculative_tokens": 0}`)); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := s.WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "spec_decode") {
		t.Errorf("speculative decoding off, yet the exposition has spec_decode families")
	}
}
