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

// quantizationSetting is the engine's weight-format setting.
func quantizationSetting(e Engine, s Settings) (name, value string) {
	if e == EngineTGI {
		return "quantize", s.Quantize
	}
	return "quantization", s.Quantization
}

// fp8Weights reports whether the engine's weights are FP8.
func fp8Weights(e Engine, s Settings) bool {
	_, v := quantizationSetting(e, s)
	return strings.EqualFold(v, "fp8")
}

// checkQuantization rejects a weight format the simulator does not model.
func checkQuantization(e Engine, s Settings) *fieldError {
	name, v := quantizationSetting(e, s)
	switch strings.ToLower(v) {
	case "", "none", "fp8":
		return nil
	}
	return &fieldError{name, fmt.Sprintf("must be none or fp8, got %q", v)}
}

// weightBytesPerParam is one byte with FP8 weights, else the model dtype.
func weightBytesPerParam(fp8 bool, dtype float64) float64 {
	if fp8 {
		return 1
	}
	return dtype
}

// fp8ComputeGain is the GEMM speed-up of FP8 weights on the GPU.
func fp8ComputeGain(fp8, gpuFP8 bool) float64 {
	if fp8 && gpuFP8 {
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
