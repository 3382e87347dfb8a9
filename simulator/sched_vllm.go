package simulator

// decoding reports whether r is past its (re)prefill: its next step computes one token.
func decoding(r *request) bool {
	return r.generated > 0 && r.prompt+r.generated-r.computed <= 1
}

func (s *Server) allDecoding() bool {
	for _, r := range s.running {
		if !decoding(r) {
			return false
		}
	}
	return true
}

func (s *Server) kvRead() float64 {
	ctx := 0.0
	for _, r := range s.running {
		ctx += float64(r.computed)
	}
	return ctx
}

// stepVLLM is one vLLM V1 scheduler step: running requests first (decode or the next
// prefill chunk), preempting the newest running request when blocks run out, then waiting
// requests while the token budget, max_num_seqs and free blocks allow. Chunked prefill and
// decodes share the step.
func (s *Server) stepVLLM(limit float64) float64 {
	p := s.p
	b := len(s.running)
	if b > 0 && s.allDecoding() && p.kvUnits-s.used >= b {
		budget := p.prefillLimit - b
		headFits := s.waiting.len() > 0 && b < p.maxSeqs && budget > 0 &&
			p.units(min(s.waiting.front().prompt+s.waiting.front().generated, budget)) <= p.kvUnits-s.used-b
		if !headFits {
			s.noteCap()
			// A block of tokens per request fits in the free blocks, so up to block_size
			// decode steps run without allocation failures.
			t0 := s.decodeTokenTime(b, s.kvRead())
			k := s.decodeSpan(limit, t0, s.waiting.len() == 0 && b < p.maxSeqs, p.unit)
			return s.decodeRun(k)
		}
	}
	budget := p.prefillLimit
	tokens := 0
	ctx := 0.0
	preempted := false
	for i := 0; i < len(s.running) && budget > 0; i++ {
		r := s.running[i]
		n := min(p.prefillChunk(r.prompt+r.generated-r.computed), budget)
		u := p.units(r.computed+n-r.hit) - r.units
		preemptedSelf := false
		for u > p.kvUnits-s.used {
			victim := len(s.running) - 1
			s.requeue(victim)
			s.st.preemptions++
			s.observe(EventFirstPreemption)
			preempted = true
			if victim == i {
				preemptedSelf = true
				break
			}
		}
		if preemptedSelf {
			break
		}
		r.units += u
		s.used += u
		r.step = n
		budget -= n
		tokens += n
		ctx += float64(r.computed) + float64(n)/2
	}
	// Like vLLM's scheduler, admit nothing new in a step that had to preempt.
	for !preempted && s.waiting.len() > 0 && len(s.running) < p.maxSeqs && budget > 0 {
		r := s.waiting.front()
		hit := s.prefixHit(r)
		n := min(p.prefillChunk(r.prompt+r.generated-hit), budget)
		u := p.units(n)
		if u > p.kvUnits-s.used {
			break
		}
		s.admit(r, hit)
		r.units = u
		s.used += u
		r.step = n
		budget -= n
		tokens += n
		ctx += float64(hit) + float64(n)/2
	}
	s.noteCap()
	if tokens == 0 {
		return 0
	}
	dt, end := s.completeStep(tokens, ctx)
	s.h.iterTokens.observe(float64(tokens))
	s.finishDone(end)
	return dt
}

// prefillChunk caps the tokens one request computes in a step at
// --long-prefill-token-threshold, as vLLM V1's scheduler does for running and
// waiting requests alike, so a long prompt leaves budget to others.
func (p *params) prefillChunk(n int) int {
	if p.longPrefill > 0 && n > p.longPrefill {
		return p.longPrefill
	}
	return n
}

// completeStep ends a scheduler step of tokens tokens over ctx context
// tokens: it advances every scheduled request by its step, emits the tokens
// of those that reached their output, and returns the step's duration and
// end time.
func (s *Server) completeStep(tokens int, ctx float64) (dt, end float64) {
	dt = s.p.stepTime(tokens, ctx)
	end = s.now + dt
	for _, r := range s.running {
		if r.step == 0 {
			continue
		}
		r.computed += r.step
		r.step = 0
		if r.computed >= r.prompt+r.generated {
			s.emit(r, end, 1, 0)
		}
	}
	return dt, end
}
