package simulator

import (
	"math"
	"testing"
)

func TestFP8WeightsPhysics(t *testing.T) {
	t.Parallel()
	m := ModelConfig{}
	m.defaults()
	for _, tc := range []struct {
		name    string
		engine  Engine
		fp8GPU  bool
		s       Settings
		speedup float64 // of a compute-bound prefill step
	}{
		{"vLLM on an FP8 GPU", EngineVLLM, true, Settings{Quantization: "fp8"}, fp8GEMMSpeedup},
		{"vLLM on A100: memory only", EngineVLLM, false, Settings{Quantization: "fp8"}, 1},
		{"SGLang", EngineSGLang, true, Settings{Quantization: "fp8"}, fp8GEMMSpeedup},
		{"TGI", EngineTGI, true, Settings{Quantize: "fp8"}, fp8GEMMSpeedup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := GPUConfig{FP8: tc.fp8GPU}
			g.defaults()
			base, err := resolve(tc.engine, Settings{}, m, g)
			if err != nil {
				t.Fatal(err.msg)
			}
			q, err := resolve(tc.engine, tc.s, m, g)
			if err != nil {
				t.Fatal(err.msg)
			}
			if q.weightBytes != base.weightBytes/2 {
				t.Errorf("weights %v B, want half of %v", q.weightBytes, base.weightBytes)
			}
			if q.kvTokens <= base.kvTokens {
				t.Errorf("KV tokens %d, want more than %d", q.kvTokens, base.kvTokens)
			}
			if got := (base.stepTime(16000, 0) - base.overhead) / (q.stepTime(16000, 0) - q.overhead); math.Abs(got-tc.speedup) > 1e-9 {
				t.Errorf("prefill speed-up %v, want %v", got, tc.speedup)
			}
			// A one-token decode step reads the weights: half the bytes.
			if q.stepTime(1, 0) >= base.stepTime(1, 0) {
				t.Errorf("decode step %v s, want below %v s", q.stepTime(1, 0), base.stepTime(1, 0))
			}
		})
	}
	if _, err := resolve(EngineVLLM, Settings{Quantization: "awq"}, m, GPUConfig{MemoryGiB: 80, BandwidthGBps: 3350, TFLOPS: 989, MBU: 0.75, MFU: 0.5}); err == nil || err.field != "quantization" {
		t.Errorf("awq: error %v, want one on quantization", err)
	}
}
