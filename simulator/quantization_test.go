package simulator

import (
	"math"
	"testing"
)

func TestWeightQuantizationPhysics(t *testing.T) {
	t.Parallel()
	m := ModelConfig{}
	m.defaults()
	for _, tc := range []struct {
		name    string
		engine  Engine
		fp8GPU  bool
		s       Settings
		bytes   float64 // per weight
		speedup float64 // of a compute-bound prefill step
	}{
		{"vLLM fp8 on an FP8 GPU", EngineVLLM, true, Settings{Quantization: "fp8"}, 1, fp8GEMMSpeedup},
		{"vLLM fp8 on A100: memory only", EngineVLLM, false, Settings{Quantization: "fp8"}, 1, 1},
		{"SGLang fp8", EngineSGLang, true, Settings{Quantization: "fp8"}, 1, fp8GEMMSpeedup},
		{"TGI fp8", EngineTGI, true, Settings{Quantize: "fp8"}, 1, fp8GEMMSpeedup},
		// AWQ is W4A16: the weights shrink, the GEMMs run in 16 bits even
		// on FP8 tensor cores.
		{"vLLM awq_marlin", EngineVLLM, true, Settings{Quantization: "awq_marlin"}, 0.51953125, 1},
		{"vLLM awq on A100", EngineVLLM, false, Settings{Quantization: "AWQ"}, 0.51953125, 1},
		{"SGLang awq", EngineSGLang, true, Settings{Quantization: "awq"}, 0.51953125, 1},
		{"TGI awq", EngineTGI, false, Settings{Quantize: "awq"}, 0.51953125, 1},
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
			if want := m.ParametersB * 1e9 * tc.bytes; math.Abs(q.weightBytes-want) > 1 {
				t.Errorf("weights %v B, want %v B (%v B per parameter)", q.weightBytes, want, tc.bytes)
			}
			// The freed memory all goes to the KV cache: capacity grows by
			// the freed bytes over the bytes of a token (less one
			// allocation unit of rounding).
			freed := base.weightBytes - q.weightBytes
			if got, want := float64(q.kvTokens-base.kvTokens), freed/q.kvBytesToken; got < want-float64(q.unit)-1 || got > want+float64(q.unit)+1 {
				t.Errorf("KV tokens %d → %d (+%v), want about +%.0f", base.kvTokens, q.kvTokens, got, want)
			}
			if got := (base.stepTime(16000, 0) - base.overhead) / (q.stepTime(16000, 0) - q.overhead); math.Abs(got-tc.speedup) > 1e-9 {
				t.Errorf("prefill speed-up %v, want %v", got, tc.speedup)
			}
			// A one-token decode step is memory-bound: it reads every
			// weight once, so it takes the weight bytes' share of the time.
			if got, want := (q.stepTime(1, 0)-q.overhead)/(base.stepTime(1, 0)-base.overhead), tc.bytes/m.DtypeBytes; math.Abs(got-want) > 1e-9 {
				t.Errorf("decode step at %v of the unquantized one, want %v", got, want)
			}
		})
	}
}

func TestQuantizationValues(t *testing.T) {
	t.Parallel()
	m := ModelConfig{}
	m.defaults()
	g := GPUConfig{}
	g.defaults()
	for _, tc := range []struct {
		engine Engine
		s      Settings
		field  string // "" when accepted
	}{
		{EngineVLLM, Settings{Quantization: "none"}, ""},
		{EngineVLLM, Settings{Quantization: "awq_marlin"}, ""},
		{EngineVLLM, Settings{Quantization: "gptq"}, "quantization"},
		{EngineSGLang, Settings{Quantization: "awq"}, ""},
		{EngineSGLang, Settings{Quantization: "int8"}, "quantization"},
		{EngineTGI, Settings{Quantize: "awq"}, ""},
		{EngineTGI, Settings{Quantize: "awq_marlin"}, "quantize"},
	} {
		_, err := resolve(tc.engine, tc.s, m, g)
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s %+v: %s", tc.engine, tc.s, err.msg)
		case tc.field != "" && (err == nil || err.field != tc.field):
			t.Errorf("%s %+v: error %v, want one on %s", tc.engine, tc.s, err, tc.field)
		}
	}
}
