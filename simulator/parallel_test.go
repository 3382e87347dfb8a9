package simulator

import (
	"strings"
	"testing"
)

func TestTensorParallelPhysics(t *testing.T) {
	t.Parallel()
	m := ModelConfig{}
	m.defaults()
	m.ContextLength = 32768
	g := GPUConfig{MemoryGiB: 48, BandwidthGBps: 864, TFLOPS: 362}
	g.defaults()
	for _, tc := range []struct {
		engine Engine
		set    func(s *Settings, t int)
	}{
		{EngineVLLM, func(s *Settings, t int) { s.TensorParallelSize = t }},
		{EngineSGLang, func(s *Settings, t int) { s.TPSize = t }},
		{EngineTGI, func(s *Settings, t int) { s.NumShard = t }},
	} {
		t.Run(string(tc.engine), func(t *testing.T) {
			one, err := resolve(tc.engine, Settings{}, m, g)
			if err != nil {
				t.Fatal(err.msg)
			}
			var s Settings
			tc.set(&s, 4)
			four, err := resolve(tc.engine, s, m, g)
			if err != nil {
				t.Fatal(err.msg)
			}
			// Weights are paid once, so the KV cache grows more than 4-fold.
			if four.kvTokens <= 4*one.kvTokens {
				t.Errorf("KV tokens %d at t=4, want more than 4 × %d", four.kvTokens, one.kvTokens)
			}
			// A compute-bound 12k-token prefill step: 4 × 0.9 faster, less the all-reduces.
			speedup := one.stepTime(12000, 0) / four.stepTime(12000, 0)
			if speedup < 3 || speedup > 3.6 {
				t.Errorf("prefill speed-up %.2f at t=4, want in [3, 3.6]", speedup)
			}
			if four.overhead <= one.overhead {
				t.Errorf("step overhead %v at t=4, want above %v (all-reduce)", four.overhead, one.overhead)
			}
			tc.set(&s, 3)
			if _, err := resolve(tc.engine, s, m, g); err == nil || err.field != tpSettingName(tc.engine) {
				t.Errorf("t=3: error %v, want one on %s", err, tpSettingName(tc.engine))
			}
		})
	}
}

func TestParallelSettingsAreReadable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		engine      Engine
		flag, quant string
	}{
		{EngineVLLM, "--tensor-parallel-size", "quantization"},
		{EngineSGLang, "--tp", "quantization"},
		{EngineTGI, "--num-shard", "quantize"},
	} {
		f, err := NewFleet(oneServer(t, "engine: "+string(tc.engine)), testStart)
		if err != nil {
			t.Fatal(err)
		}
		s := f.Servers()[0]
		if v, ok := s.ReadSetting(flagSetting(strings.ReplaceAll(tc.flag[2:], "-", "_"))); !ok || v != "1" {
			t.Errorf("%s %s reads %q, %v; want 1", tc.engine, tc.flag, v, ok)
		}
		if v, ok := s.ReadSetting(tc.quant); !ok || v != "none" {
			t.Errorf("%s %s reads %q, %v; want none", tc.engine, tc.quant, v, ok)
		}
	}
}
