package simulator

// stepTGI is one TGI v3 router iteration: queued requests join when input + max_new_tokens
// can be reserved in max_batch_total_tokens, and are prefilled (chunked by
// max_batch_prefill_tokens) in a step of their own; otherwise the batch decodes. KV is
// reserved up front, so shortage shows as queueing, never as preemption.
func (s *Server) stepTGI(limit float64) float64 {
	p := s.p
	budget := p.prefillLimit
	tokens, admitted := 0, 0
	ctx := 0.0
	decoders := 0
	for _, r := range s.running {
		if decoding(r) {
			decoders++
			continue
		}
		if budget == 0 {
			continue
		}
		n := min(r.prompt+r.generated-r.computed, budget)
		r.step = n
		budget -= n
		tokens += n
		ctx += float64(r.computed) + float64(n)/2
	}
	for s.waiting.len() > 0 && budget > 0 {
		r := s.waiting.front()
		reserve := r.prompt + r.maxTokens
		if s.used+reserve > p.kvUnits {
			break
		}
		hit := s.prefixHit(r)
		extend := r.prompt + r.generated - hit
		if extend > budget && tokens > 0 {
			break
		}
		n := min(extend, budget)
		s.admit(r, hit)
		r.units = reserve
		s.used += reserve
		r.step = n
		budget -= n
		tokens += n
		admitted++
		ctx += float64(hit) + float64(n)/2
	}
	if tokens > 0 {
		dt, end := s.completeStep(tokens, ctx)
		s.st.prefillSteps++
		if admitted > 0 {
			s.h.tgiNextSize.observe(float64(admitted))
			if decoders > 0 {
				s.st.concat++
				s.h.tgiConcatDur.observe(s.p.overhead / 4)
			}
		}
		s.h.tgiBatchInf[0].observe(dt)
		s.h.tgiForward[0].observe(dt - s.p.overhead/2)
		s.h.tgiDecodeDur[0].observe(s.p.overhead / 4)
		s.h.tgiFilter[0].observe(s.p.overhead / 4)
		s.finishDone(end)
		return dt
	}
	b := len(s.running)
	if b == 0 {
		return 0
	}
	t0 := p.stepTime(b, s.kvRead())
	k := s.decodeSpan(limit, t0, s.waiting.len() == 0, 1<<30)
	return s.decodeRun(k)
}
