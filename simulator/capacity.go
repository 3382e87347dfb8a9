package simulator

import (
	"fmt"
	"math"
	"strings"
)

const gib = 1 << 30

// params are the settings with every default resolved and the capacity derived from memory.
type params struct {
	engine Engine
	s      Settings // Settings with defaults filled in.

	weightBytes  float64 // model weights resident on the GPU
	kvBytesToken float64 // KV bytes per token
	flopsToken   float64 // 2 x parameters
	bandwidth    float64 // achieved bytes/s
	compute      float64 // achieved FLOP/s
	overhead     float64 // seconds per step

	kvTokens     int // KV capacity in tokens (blocks x block size for vLLM)
	kvUnits      int // allocation units: vLLM blocks, SGLang and TGI tokens
	unit         int // tokens per allocation unit
	maxSeqs      int // concurrency cap in the running batch
	prefillLimit int // prompt tokens per step
	maxModelLen  int // longest request (prompt + output)
	prefixCache  bool
	kvDtype      string
	longPrefill  int // vLLM: prompt tokens one request computes per step at most (0: no cap)
	specK        int // vLLM: draft tokens per sequence and step (0: speculative decoding off)
	specMethod   string
}

// kvDtypeBytes maps a kv_cache_dtype to bytes per element; 0 means unknown.
func kvDtypeBytes(dtype string, model float64) float64 {
	switch strings.ToLower(dtype) {
	case "", "auto":
		return model
	case "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_e4m3fn":
		return 1
	case "bfloat16", "float16", "half", "bf16", "fp16":
		return 2
	}
	return 0
}

// resolve fills engine defaults (the engines' documented defaults) and computes capacity (docs/recommendations.md, Formulas).
func resolve(e Engine, s Settings, m ModelConfig, g GPUConfig) (*params, *fieldError) {
	p := &params{engine: e}
	if err := checkTP(e, s); err != nil {
		return nil, err
	}
	// Engine defaults follow one GPU's memory (g); capacity and speed follow
	// all tensor-parallel shards together (sg).
	tp := tpDegree(e, s)
	sg := shardGPU(g, tp)
	if err := checkQuantization(e, s); err != nil {
		return nil, err
	}
	wf := weightFormatOf(e, s)
	setTP(e, &s, tp)
	setQuantization(e, &s)
	p.weightBytes = m.ParametersB * 1e9 * weightBytesPerParam(wf, m.DtypeBytes)
	p.flopsToken = 2 * m.ParametersB * 1e9
	p.bandwidth = sg.BandwidthGBps * 1e9 * g.MBU
	p.compute = sg.TFLOPS * 1e12 * g.MFU * computeGain(wf, g.FP8)
	p.overhead = g.StepOverheadMs/1000 + allReduceOverhead(tp, m.Layers)
	mem := sg.MemoryGiB * gib
	big := g.MemoryGiB >= 70
	switch e {
	case EngineVLLM:
		if s.GPUMemoryUtilization == 0 {
			s.GPUMemoryUtilization = 0.9
		}
		if s.MaxNumSeqs == 0 {
			s.MaxNumSeqs = 256
			if big {
				s.MaxNumSeqs = 1024
			}
		}
		if s.APIServerCount == 0 {
			s.APIServerCount = 1
		}
		if s.MaxNumBatchedTokens == 0 {
			s.MaxNumBatchedTokens = 2048
			if big {
				s.MaxNumBatchedTokens = 8192
			}
		}
		if s.EnablePrefixCaching == nil {
			t := true
			s.EnablePrefixCaching = &t
		}
		if s.KVCacheDtype == "" {
			s.KVCacheDtype = "auto"
		}
		if s.BlockSize == 0 {
			s.BlockSize = 16
		}
		if s.MaxModelLen == 0 {
			s.MaxModelLen = m.ContextLength
		}
		if s.MaxModelLen > m.ContextLength {
			return nil, &fieldError{"max_model_len", fmt.Sprintf("%d exceeds the model context length %d", s.MaxModelLen, m.ContextLength)}
		}
		p.kvDtype = s.KVCacheDtype
		p.kvBytesToken = 2 * float64(m.Layers*m.KVHeads*m.HeadDim) * kvDtypeBytes(s.KVCacheDtype, m.DtypeBytes)
		free := mem*s.GPUMemoryUtilization - p.weightBytes - sg.ReservedGiB*gib
		blocks := int(free / (p.kvBytesToken * float64(s.BlockSize)))
		if blocks <= 0 {
			return nil, &fieldError{"gpu_memory_utilization", fmt.Sprintf("no memory left for the KV cache (%.1f GiB x %v minus %.1f GiB weights and %.1f GiB reserved)", g.MemoryGiB, s.GPUMemoryUtilization, p.weightBytes/gib, g.ReservedGiB)}
		}
		p.unit = s.BlockSize
		p.kvUnits = blocks
		p.kvTokens = blocks * s.BlockSize
		p.maxSeqs = s.MaxNumSeqs
		p.prefillLimit = s.MaxNumBatchedTokens
		p.maxModelLen = s.MaxModelLen
		p.prefixCache = *s.EnablePrefixCaching
		p.longPrefill = s.LongPrefillTokenThreshold
		if s.NumSpeculativeTokens > 0 && s.SpeculativeMethod == "" {
			s.SpeculativeMethod = specNgram
		}
		p.specK = s.NumSpeculativeTokens
		p.specMethod = s.SpeculativeMethod
		if p.kvTokens < s.MaxModelLen {
			return nil, &fieldError{"max_model_len", fmt.Sprintf("%d tokens do not fit in the KV cache (%d tokens)", s.MaxModelLen, p.kvTokens)}
		}
	case EngineSGLang:
		if s.ChunkedPrefillSize == 0 {
			switch {
			case g.MemoryGiB < 35:
				s.ChunkedPrefillSize = 2048
			case g.MemoryGiB < 60:
				s.ChunkedPrefillSize = 4096
			case g.MemoryGiB < 160:
				s.ChunkedPrefillSize = 8192
			default:
				s.ChunkedPrefillSize = 16384
			}
		}
		if s.MemFractionStatic == 0 {
			graphBS := 256.0
			if g.MemoryGiB < 60 {
				graphBS = 32
			}
			reserved := 0.5 + 1.5e-3*math.Max(float64(s.ChunkedPrefillSize), 2048) + 2e-3*graphBS + 0.125
			if g.MemoryGiB > 60 {
				reserved = math.Max(reserved, 10)
			}
			s.MemFractionStatic = math.Round((g.MemoryGiB-reserved)/g.MemoryGiB*1000) / 1000
		}
		if s.ScheduleConservativeness == 0 {
			s.ScheduleConservativeness = 1.0
		}
		if s.MaxPrefillTokens == 0 {
			s.MaxPrefillTokens = 16384
		}
		if s.DisableRadixCache == nil {
			f := false
			s.DisableRadixCache = &f
		}
		// SGLang's --kv-cache-dtype (fp8_e4m3, fp8_e5m2) halves the bytes
		// per token of the pool that mem_fraction_static leaves.
		if s.KVCacheDtype == "" {
			s.KVCacheDtype = "auto"
		}
		p.kvDtype = s.KVCacheDtype
		p.kvBytesToken = 2 * float64(m.Layers*m.KVHeads*m.HeadDim) * kvDtypeBytes(s.KVCacheDtype, m.DtypeBytes)
		tokens := int((mem*s.MemFractionStatic - p.weightBytes) / p.kvBytesToken)
		if tokens <= 0 {
			return nil, &fieldError{"mem_fraction_static", fmt.Sprintf("no memory left for the KV pool (%.1f GiB x %v minus %.1f GiB weights)", g.MemoryGiB, s.MemFractionStatic, p.weightBytes/gib)}
		}
		if s.MaxRunningRequests == 0 {
			pool := min(max(tokens/m.ContextLength*512, 2048), 4096)
			s.MaxRunningRequests = min(tokens/2, pool)
		}
		if tokens < m.ContextLength {
			return nil, &fieldError{"mem_fraction_static", fmt.Sprintf("the KV pool (%d tokens) is smaller than the context length %d", tokens, m.ContextLength)}
		}
		p.unit = 1
		p.kvUnits = tokens
		p.kvTokens = tokens
		p.maxSeqs = s.MaxRunningRequests
		p.prefillLimit = s.MaxPrefillTokens
		if s.ChunkedPrefillSize > 0 {
			p.prefillLimit = min(s.ChunkedPrefillSize, s.MaxPrefillTokens)
		}
		p.maxModelLen = m.ContextLength
		p.prefixCache = !*s.DisableRadixCache
	case EngineTGI:
		if s.MaxConcurrentRequests == 0 {
			s.MaxConcurrentRequests = 128
		}
		if s.MaxTotalTokens == 0 {
			s.MaxTotalTokens = m.ContextLength
		}
		if s.MaxInputTokens == 0 {
			s.MaxInputTokens = s.MaxTotalTokens - 1
		}
		if s.MaxBatchPrefillTokens == 0 {
			s.MaxBatchPrefillTokens = s.MaxInputTokens + 50
		}
		// TGI's --kv-cache-dtype (fp8_e4m3fn, fp8_e5m2) halves the bytes per
		// token, and the launcher sizes max_batch_total_tokens from them.
		p.kvDtype = "auto"
		if s.KVCacheDtype != "" {
			p.kvDtype = s.KVCacheDtype
		}
		p.kvBytesToken = 2 * float64(m.Layers*m.KVHeads*m.HeadDim) * kvDtypeBytes(p.kvDtype, m.DtypeBytes)
		tokens := int((mem - p.weightBytes - sg.ReservedGiB*gib) / p.kvBytesToken)
		if tokens <= 0 {
			return nil, &fieldError{"max_batch_total_tokens", "no memory left for the KV cache after weights"}
		}
		if s.MaxBatchTotalTokens == 0 || s.MaxBatchTotalTokens > tokens {
			s.MaxBatchTotalTokens = tokens
		}
		if s.MaxTotalTokens > s.MaxBatchTotalTokens {
			return nil, &fieldError{"max_total_tokens", fmt.Sprintf("%d exceeds max_batch_total_tokens %d", s.MaxTotalTokens, s.MaxBatchTotalTokens)}
		}
		if s.MaxInputTokens >= s.MaxTotalTokens {
			return nil, &fieldError{"max_input_tokens", "must be below max_total_tokens"}
		}
		p.unit = 1
		p.kvUnits = s.MaxBatchTotalTokens
		p.kvTokens = s.MaxBatchTotalTokens
		p.maxSeqs = s.MaxConcurrentRequests
		p.prefillLimit = s.MaxBatchPrefillTokens
		p.maxModelLen = s.MaxTotalTokens
		p.prefixCache = true
	}
	p.s = s
	return p, nil
}

// stepTime is the roofline time of one engine step: weights plus the KV of ctxTokens read
// once from memory, against the FLOPs of all tokens computed, plus a fixed host overhead.
func (p *params) stepTime(tokens int, ctxTokens float64) float64 {
	mem := (p.weightBytes + ctxTokens*p.kvBytesToken) / p.bandwidth
	comp := p.flopsToken * float64(tokens) / p.compute
	return max(mem, comp) + p.overhead
}

// units returns the allocation units that tokens occupy.
func (p *params) units(tokens int) int {
	return (tokens + p.unit - 1) / p.unit
}
