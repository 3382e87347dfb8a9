package simulator

// Bucket lists as each engine's own metrics code defines them, so the
// simulated expositions parse and aggregate like the real ones.
var (
	vllmTTFTBuckets   = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560}
	vllmITLBuckets    = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}
	vllmE2EBuckets    = []float64{0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680}
	vllmIterBuckets   = []float64{1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}
	vllmParamsNBucket = []float64{1, 2, 5, 10, 20}

	vllmV0TTFTBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	vllmV0TPOTBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5}
	vllmV0E2EBuckets  = []float64{1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60}

	sglangTTFTBuckets  = []float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400}
	sglangITLBuckets   = []float64{0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8}
	sglangE2EBuckets   = []float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400}
	sglangQueueBuckets = []float64{0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000}
	sglangTokenBuckets = []float64{100, 300, 500, 700, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000, 15000, 20000, 22000, 25000, 30000, 35000, 40000, 66000, 99000, 132000, 300000, 600000, 900000, 1100000}
)

// buckets125 is vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max.
func buckets125(maxValue int) []float64 {
	var b []float64
	for exp := 1; ; exp *= 10 {
		for _, m := range []int{1, 2, 5} {
			v := m * exp
			if v > maxValue {
				return b
			}
			b = append(b, float64(v))
		}
	}
}

// tgiDurationBuckets are TGI's 35 geometric buckets: 0.0001 x 1.5^k, computed as TGI does.
func tgiDurationBuckets() []float64 {
	b := make([]float64, 0, 35)
	v := 0.0001
	for range 35 {
		v *= 1.5
		b = append(b, v)
	}
	return b
}

// tgiLinearBuckets are TGI's 100 linear buckets max/100 x k.
func tgiLinearBuckets(maxValue int) []float64 {
	b := make([]float64, 0, 100)
	step := float64(maxValue) / 100.0
	for k := 1; k <= 100; k++ {
		b = append(b, step*float64(k))
	}
	return b
}

// vllmV0IterBuckets are V0's CUDA-graph capture sizes: 1, 2, 4, then steps of 8.
func vllmV0IterBuckets(maxSeqs int) []float64 {
	b := []float64{1, 2, 4}
	for v := 8; v <= min(maxSeqs, 512); v += 8 {
		b = append(b, float64(v))
	}
	return b
}

// hists holds the histograms of one server; which ones exist depends on the engine.
type hists struct {
	ttft, itl, e2e, queue, inference, prefill, decode, tpot   *histogram
	promptLen, genLen, maxGen, paramsN, paramsMax, iterTokens *histogram
	sgQueue                                                   *histogram

	tgiValidation, tgiQueue, tgiDuration, tgiInference, tgiMeanTPT *histogram
	tgiGenerated, tgiInput, tgiMaxNew, tgiNextSize, tgiConcatDur   *histogram
	// Per method: 0 prefill, 1 decode.
	tgiBatchInf, tgiForward, tgiDecodeDur, tgiFilter [2]*histogram
}

func newHists(s *Server) *hists {
	h := &hists{}
	format := pyFloat
	if s.cfg.Engine == EngineTGI {
		format = rustFloat
	}
	mk := func(b []float64) *histogram { return newHistogram(b, format) }
	switch s.cfg.Engine {
	case EngineVLLM:
		lens := buckets125(s.p.maxModelLen)
		if s.cfg.MetricsVersion == "v0" {
			h.ttft = mk(vllmV0TTFTBuckets)
			h.itl = mk(vllmV0TPOTBuckets)
			h.e2e = mk(vllmV0E2EBuckets)
			h.iterTokens = mk(vllmV0IterBuckets(s.p.maxSeqs))
		} else {
			h.ttft = mk(vllmTTFTBuckets)
			h.itl = mk(vllmITLBuckets)
			h.e2e = mk(vllmE2EBuckets)
			h.iterTokens = mk(vllmIterBuckets)
		}
		h.tpot = mk(h.itl.bounds)
		h.queue = mk(h.e2e.bounds)
		h.inference = mk(h.e2e.bounds)
		h.prefill = mk(h.e2e.bounds)
		h.decode = mk(h.e2e.bounds)
		h.promptLen = mk(lens)
		h.genLen = mk(lens)
		h.maxGen = mk(lens)
		h.paramsN = mk(vllmParamsNBucket)
		h.paramsMax = mk(lens)
	case EngineSGLang:
		h.ttft = mk(sglangTTFTBuckets)
		h.itl = mk(sglangITLBuckets)
		h.e2e = mk(sglangE2EBuckets)
		h.sgQueue = mk(sglangQueueBuckets)
		h.promptLen = mk(sglangTokenBuckets)
		h.genLen = mk(sglangTokenBuckets)
	case EngineTGI:
		d := tgiDurationBuckets()
		for _, p := range []**histogram{&h.tgiValidation, &h.tgiQueue, &h.tgiDuration, &h.tgiInference, &h.tgiMeanTPT, &h.tgiConcatDur} {
			*p = mk(d)
		}
		for i := range 2 {
			h.tgiBatchInf[i] = mk(d)
			h.tgiForward[i] = mk(d)
			h.tgiDecodeDur[i] = mk(d)
			h.tgiFilter[i] = mk(d)
		}
		st := s.p.s
		h.tgiInput = mk(tgiLinearBuckets(st.MaxInputTokens))
		h.tgiGenerated = mk(tgiLinearBuckets(st.MaxTotalTokens))
		h.tgiMaxNew = mk(tgiLinearBuckets(st.MaxTotalTokens))
		next := make([]float64, 1024)
		for i := range next {
			next[i] = float64(i + 1)
		}
		h.tgiNextSize = mk(next)
	}
	return h
}
