package simulator

import (
	"fmt"
	"strings"
)

// FP8 weight quantization (vLLM and SGLang --quantization fp8, TGI
// --quantize fp8) stores one byte per weight: the memory freed goes to the
// KV cache and a decode step, which reads every weight, reads half the
// bytes. On a GPU with FP8 tensor cores the GEMMs also run faster; on
// others (A100) the weights are widened to 16 bits in the kernel, so only
// memory is saved.
const fp8GEMMSpeedup = 1.6

// awqBytesPerParam is what an AWQ checkpoint (vLLM --quantization
// awq_marlin or awq, SGLang --quantization awq, TGI --quantize awq) stores
// per weight: four bits, plus a 16-bit scale and a 4-bit zero point for
// each group of 128 weights. It is the recommender's figure for
// int4_awq_weights; the simulator imports no other package of perfagent,
// so the constant is written out in both.
const awqBytesPerParam = 0.5 + 2.5/128

// weightFormat is how the engine stores the model's weights.
type weightFormat int

const (
	weightsDtype weightFormat = iota // the model dtype
	weightsFP8                       // one byte per weight
	weightsAWQ                       // 4-bit AWQ groups, dequantized to 16 bits in the GEMM (W4A16)
)

// quantizationSetting is the engine's weight-format setting.
func quantizationSetting(e Engine, s Settings) (name, value string) {
	if e == EngineTGI {
		return "quantize", s.Quantize
	}
	return "quantization", s.Quantization
}

// quantizationValues are the weight formats each engine's flag takes in
// the simulator: vLLM serves AWQ with Marlin kernels (awq_marlin) on
// compute capability 8.0 or more and with its own (awq) elsewhere; the
// weights and their bytes are the same.
func quantizationValues(e Engine) []string {
	if e == EngineTGI {
		return []string{"none", "fp8", "awq"}
	}
	return []string{"none", "fp8", "awq", "awq_marlin"}
}

// weightFormatOf is the weight format the engine's setting selects.
func weightFormatOf(e Engine, s Settings) weightFormat {
	_, v := quantizationSetting(e, s)
	switch strings.ToLower(v) {
	case "fp8":
		return weightsFP8
	case "awq", "awq_marlin":
		return weightsAWQ
	}
	return weightsDtype
}

// checkQuantization rejects a weight format the simulator does not model.
func checkQuantization(e Engine, s Settings) *fieldError {
	name, v := quantizationSetting(e, s)
	if v == "" {
		return nil
	}
	for _, ok := range quantizationValues(e) {
		if strings.EqualFold(v, ok) {
			return nil
		}
	}
	return &fieldError{name, fmt.Sprintf("must be one of %s, got %q", strings.Join(quantizationValues(e), ", "), v)}
}

// weightBytesPerParam is one byte with FP8 weights, about 0.52 with AWQ,
// else the model dtype.
func weightBytesPerParam(f weightFormat, dtype float64) float64 {
	switch f {
	case weightsFP8:
		return 1
	case weightsAWQ:
		return awqBytesPerParam
	}
	return dtype
}

// computeGain is the GEMM speed-up of the weight format on the GPU: FP8
// weights on FP8 tensor cores only. AWQ weights are widened to 16 bits
// inside the kernel and multiplied in 16 bits, so a compute-bound step
// (prefill) runs no faster; only the bytes a step reads shrink.
func computeGain(f weightFormat, gpuFP8 bool) float64 {
	if f == weightsFP8 && gpuFP8 {
		return fp8GEMMSpeedup
	}
	return 1
}

// sglangQuantization is /get_server_info's quantization: null for the
// model dtype, as SGLang reports it.
func sglangQuantization(s Settings) any {
	if s.Quantization == "" || strings.EqualFold(s.Quantization, "none") {
		return nil
	}
	return s.Quantization
}

// setQuantization writes "none" for unquantized weights, as the catalog's
// default reads it.
func setQuantization(e Engine, s *Settings) {
	if e == EngineTGI {
		if s.Quantize == "" {
			s.Quantize = "none"
		}
		return
	}
	if s.Quantization == "" {
		s.Quantization = "none"
	}
}
