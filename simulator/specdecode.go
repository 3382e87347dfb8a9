package simulator

import (
	"math"
	"strconv"
)

// Speculative decoding (vLLM's --speculative-config). Each decode step of a
// sequence drafts k tokens, and the target model verifies the k drafts and
// one token of its own in one forward pass. With a per-token acceptance
// probability α (the workload's spec_acceptance) and acceptance stopping at
// the first rejected draft, a step emits (1−α^(k+1))/(1−α) tokens on
// average. The verify pass computes k+1 tokens per sequence: at a small
// batch the step stays memory-bound and costs about what a plain step does,
// so the tokens per step are nearly free; at a large batch it turns
// compute-bound, the step grows with k+1 and the gain vanishes or turns
// into a loss. The model is mean-field: a decode step of the simulator is
// one emitted token, which takes the verify step's time divided by the
// tokens it emits.
const (
	specNgram      = "ngram"
	specDraftModel = "draft_model"
	// maxSpecTokens bounds num_speculative_tokens in fleet files.
	maxSpecTokens = 16
	// ngramDraftSeconds is the host time of the n-gram lookup of one step.
	ngramDraftSeconds = 0.0002
	// draftStepShare is the cost of one draft-model forward pass as a share
	// of the target's step without host overhead: a drafter about a tenth
	// of the target's size.
	draftStepShare = 0.1
)

var specMethods = []string{specNgram, specDraftModel}

// specTokensPerStep is the expected number of tokens one verify step emits
// per sequence with k drafts accepted each with probability alpha.
func specTokensPerStep(alpha float64, k int) float64 {
	if k <= 0 {
		return 1
	}
	return (1 - math.Pow(alpha, float64(k+1))) / (1 - alpha)
}

// decodeTokenTime is the time per emitted token of a decode step of b
// sequences over ctx context tokens: the plain step time, or with
// speculative decoding the draft and verify time over the tokens emitted.
func (s *Server) decodeTokenTime(b int, ctx float64) float64 {
	p := s.p
	if p.specK == 0 {
		return p.stepTime(b, ctx)
	}
	k := p.specK
	draft := ngramDraftSeconds
	if p.specMethod == specDraftModel {
		draft = float64(k) * draftStepShare * (p.stepTime(b, ctx) - p.overhead)
	}
	verify := p.stepTime(b*(k+1), ctx)
	return (verify + draft) / specTokensPerStep(s.cfg.Workload.SpecAcceptance, k)
}

// onSpecTokens counts the drafts behind n tokens emitted by decode steps,
// as vLLM V1's speculative-decoding counters do, in expectation.
func (s *Server) onSpecTokens(n float64) {
	k := s.p.specK
	if k == 0 {
		return
	}
	a := s.cfg.Workload.SpecAcceptance
	drafts := n / specTokensPerStep(a, k)
	s.st.specDrafts += drafts
	s.st.specDraftTokens += drafts * float64(k)
	// Position i is accepted when drafts 0..i all are: probability α^(i+1).
	pa := 1.0
	for i := range k {
		pa *= a
		s.st.specAcceptedPos[i] += drafts * pa
		s.st.specAccepted += drafts * pa
	}
}

// vllmSpecFamilies are vLLM V1's speculative-decoding counters, exported
// only while speculative decoding is on.
func vllmSpecFamilies(s *Server, base []label) []family {
	if s.p.specK == 0 {
		return nil
	}
	pos := make([]series, s.p.specK)
	for i := range pos {
		pos[i] = series{labels: with(base, label{"position", strconv.Itoa(i)}), value: val(&s.st.specAcceptedPos[i])}
	}
	return []family{
		{name: "vllm:spec_decode_num_drafts_total", typ: typeCounter, help: "Number of spec decoding drafts.", series: one(base, val(&s.st.specDrafts))},
		{name: "vllm:spec_decode_num_draft_tokens_total", typ: typeCounter, help: "Number of draft tokens.", series: one(base, val(&s.st.specDraftTokens))},
		{name: "vllm:spec_decode_num_accepted_tokens_total", typ: typeCounter, help: "Number of accepted tokens.", series: one(base, val(&s.st.specAccepted))},
		{name: "vllm:spec_decode_num_accepted_tokens_per_pos_total", typ: typeCounter, help: "Accepted tokens per draft position.", series: pos},
	}
}
