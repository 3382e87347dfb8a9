package simulator

import (
	"fmt"
	"math"
)

// Tensor parallelism (vLLM --tensor-parallel-size, SGLang --tp, TGI
// --num-shard) splits every weight matrix and the KV heads over t GPUs of
// one node. The simulator treats the t GPUs as one device with t times the
// memory, bandwidth and compute, less the cost of the all-reduces that join
// the shards after each layer.
const (
	// maxTP is the largest degree accepted: the GPUs of one node.
	maxTP = 8
	// tpComputeEfficiency is the share of the t-fold compute a sharded
	// prefill keeps: the all-reduce of each layer's activations is not
	// fully hidden behind the GEMMs.
	tpComputeEfficiency = 0.9
	// allReduceSeconds is the latency of one all-reduce per log2(t) ring
	// hop over NVLink; a step pays two per layer (after attention and
	// after the MLP).
	allReduceSeconds = 5e-6
)

// tpDegree is the tensor-parallel degree the engine's setting asks for (1 when unset).
func tpDegree(e Engine, s Settings) int {
	return max(tpSetting(e, s), 1)
}

// tpSetting is the engine's tensor-parallel setting as written (0 when unset).
func tpSetting(e Engine, s Settings) int {
	switch e {
	case EngineVLLM:
		return s.TensorParallelSize
	case EngineSGLang:
		return s.TPSize
	case EngineTGI:
		return s.NumShard
	}
	return 0
}

// tpSettingName is the setting that holds an engine's tensor-parallel degree.
func tpSettingName(e Engine) string {
	switch e {
	case EngineSGLang:
		return "tp_size"
	case EngineTGI:
		return "num_shard"
	}
	return "tensor_parallel_size"
}

// checkTP rejects a degree the simulator cannot place on one node.
func checkTP(e Engine, s Settings) *fieldError {
	t := tpSetting(e, s)
	if t < 0 || t > maxTP || t&(t-1) != 0 {
		return &fieldError{tpSettingName(e), fmt.Sprintf("must be 1, 2, 4 or 8 (GPUs of one node), got %d", t)}
	}
	return nil
}

// shardGPU returns the GPU that t tensor-parallel shards add up to: t
// times the memory (so what the weights leave per GPU grows), bandwidth
// and reserved memory, and t × tpComputeEfficiency times the compute.
func shardGPU(g GPUConfig, t int) GPUConfig {
	if t <= 1 {
		return g
	}
	f := float64(t)
	g.MemoryGiB *= f
	g.ReservedGiB *= f
	g.BandwidthGBps *= f
	g.TFLOPS *= f * tpComputeEfficiency
	return g
}

// allReduceOverhead is the added time per step of t shards: two
// all-reduces per layer, each log2(t) hops long.
func allReduceOverhead(t, layers int) float64 {
	if t <= 1 {
		return 0
	}
	return 2 * float64(layers) * allReduceSeconds * math.Log2(float64(t))
}

// setTP writes the resolved degree back, so a read of the setting reports
// 1 rather than an unset 0.
func setTP(e Engine, s *Settings, t int) {
	switch e {
	case EngineVLLM:
		s.TensorParallelSize = t
	case EngineSGLang:
		s.TPSize = t
	case EngineTGI:
		s.NumShard = t
	}
}

// flagSetting maps a flag whose name is not its setting's (SGLang --tp)
// to the setting.
func flagSetting(name string) string {
	if name == "tp" {
		return "tp_size"
	}
	return name
}
