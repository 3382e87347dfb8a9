package simulator

// SGLang scheduler constants (python/sglang/srt/managers/scheduler.py defaults).
const (
	sglangInitRatio      = 0.7
	sglangMinRatioFactor = 0.14
	sglangDecaySteps     = 600
	sglangClipMaxNew     = 4096
	sglangRetractSteps   = 20
)

func (s *Server) initRatio() float64 {
	return min(sglangInitRatio*s.p.s.ScheduleConservativeness, 1)
}

func (s *Server) resetRatio() { s.newTokenRatio = s.initRatio() }

// reserve is SGLang's estimate of the KV tokens r still needs.
func (s *Server) reserve(r *request) float64 {
	return s.newTokenRatio * float64(min(r.maxTokens-r.generated, sglangClipMaxNew))
}

// stepSGLang is one SGLang scheduler iteration: a prefill batch (new requests admitted
// against the estimated future use, or the continuing chunk) runs on its own and pauses
// decoding; otherwise the running batch decodes, retracting requests when the pool is full.
func (s *Server) stepSGLang(limit float64) float64 {
	p := s.p
	budget := p.prefillLimit
	tokens := 0
	ctx := 0.0
	for _, r := range s.running {
		if decoding(r) || budget == 0 {
			continue
		}
		n := min(r.prompt+r.generated-r.computed, budget, p.kvUnits-s.used)
		if n <= 0 {
			continue
		}
		r.units += n
		s.used += n
		r.step = n
		budget -= n
		tokens += n
		ctx += float64(r.computed) + float64(n)/2
	}
	if s.waiting.len() > 0 && len(s.running) < p.maxSeqs && budget > 0 {
		rem := float64(p.kvUnits - s.used)
		for _, r := range s.running {
			rem -= s.reserve(r)
		}
		for s.waiting.len() > 0 && len(s.running) < p.maxSeqs && budget > 0 {
			r := s.waiting.front()
			hit := s.prefixHit(r)
			extend := r.prompt + r.generated - hit
			need := float64(extend) + s.reserve(r)
			if need > rem && len(s.running) > 0 {
				break
			}
			n := min(extend, budget, p.kvUnits-s.used)
			if n <= 0 {
				break
			}
			s.admit(r, hit)
			r.units = n
			s.used += n
			r.step = n
			budget -= n
			tokens += n
			rem -= need
			ctx += float64(hit) + float64(n)/2
		}
	}
	if tokens > 0 {
		dt, end := s.completeStep(tokens, ctx)
		s.finishDone(end)
		return dt
	}
	if len(s.running) == 0 {
		return 0
	}
	for len(s.running) > 1 && p.kvUnits-s.used < len(s.running)*sglangRetractSteps {
		s.retract()
	}
	b := len(s.running)
	free := p.kvUnits - s.used
	if free < b {
		return 0
	}
	maxK := free / b
	if s.waiting.len() > 0 {
		// The admission estimate decays every step; look at the queue again soon.
		maxK = min(maxK, 32)
	}
	t0 := p.stepTime(b, s.kvRead())
	k := s.decodeSpan(limit, t0, s.waiting.len() == 0 && b < p.maxSeqs, maxK)
	dt := s.decodeRun(k)
	minRatio := s.initRatio() * sglangMinRatioFactor
	s.newTokenRatio = max(minRatio, s.newTokenRatio-float64(k)*(s.initRatio()-minRatio)/sglangDecaySteps)
	return dt
}

// retract sends back the running request with the fewest output tokens (longest prompt on
// ties), as SGLang's retract_decode does, and resets the admission estimate.
func (s *Server) retract() {
	v := 0
	for i, r := range s.running {
		w := s.running[v]
		if r.generated < w.generated || (r.generated == w.generated && r.prompt > w.prompt) {
			v = i
		}
	}
	r := s.running[v]
	s.st.retracted++
	s.observeRetraction()
	s.st.intervalRetracted++
	s.st.retractedIn += float64(r.prompt)
	s.st.retractedOut += float64(r.generated)
	s.requeue(v)
	s.resetRatio()
}

// flushInterval updates SGLang's per-interval gauges, as its scheduler does when it logs.
func (s *Server) flushInterval() {
	span := s.now - s.st.intervalStart
	if span > 0 {
		s.st.genThroughput = s.st.intervalGen / span
	}
	if s.st.intervalQueries > 0 {
		s.st.cacheHitRate = s.st.intervalHits / s.st.intervalQueries
	}
	s.st.lastRetract = s.st.intervalRetracted
	s.st.intervalStart = s.now
	s.st.intervalGen, s.st.intervalQueries, s.st.intervalHits, s.st.intervalRetracted = 0, 0, 0, 0
}
