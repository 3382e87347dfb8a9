package simulator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// request is one in-flight request. Times are seconds since the server's start.
type request struct {
	arrival   float64
	prompt    int
	output    int // tokens generated before the request stops
	maxTokens int
	length    bool // stops because of max_tokens or the length limit
	hit       int  // prompt tokens served from the prefix cache at the last admission
	computed  int  // tokens whose KV is present (hit included)
	generated int
	units     int     // KV allocation units held (TGI: reserved tokens)
	step      int     // tokens scheduled in the current step
	firstSeen float64 // first time scheduled; -1 before
	firstTok  float64 // -1 before the first token
	lastTok   float64
	frontend  float64 // time in the API server outside the engine, added to TTFT and e2e
}

// stats are the server's cumulative counters and interval state.
type stats struct {
	arrived, promptTokens, genTokens, preemptions float64
	prefixQueries, prefixHits                     float64
	stop, length, abort                           float64
	retracted, retractedIn, retractedOut          float64
	cachedTokens, finished                        float64
	failValidation, failOverloaded, failDropped   float64
	prefillSteps, decodeSteps, concat             float64

	// vLLM speculative decoding (expected values, see specdecode.go).
	specDrafts, specDraftTokens, specAccepted float64
	specAcceptedPos                           [maxSpecTokens]float64

	// SGLang log interval (gauges updated every logInterval seconds).
	intervalStart                              float64
	intervalGen, intervalQueries, intervalHits float64
	intervalRetracted                          float64
	genThroughput, cacheHitRate, lastRetract   float64
}

const logInterval = 10.0

// Server is one simulated inference server. All methods are safe for concurrent use.
type Server struct {
	mu sync.Mutex

	cfg     ServerConfig
	user    Settings // settings as given, before defaults
	p       *params
	start   time.Time
	now     float64
	started float64 // when the engine process last started, seconds since start
	rng     *rand.Rand

	nextArrival  float64
	nextDeadline float64
	nextEvent    int

	running []*request
	waiting queue
	pool    []*request
	used    int // KV units in use (TGI: reserved)

	newTokenRatio float64 // SGLang admission estimate
	st            stats
	// observed holds when each physical event (EventFirstPreemption, ...)
	// first happened, seconds since start, so scenario truth can start there.
	observed map[string]float64
	// retractedAt holds the times of SGLang's retractions that still count
	// towards EventSustainedRetraction, until it happens.
	retractedAt []float64
	// capSince is when the batch last reached its cap with requests
	// waiting, -1 while it is below, for EventCapBound; capHeld says
	// whether the step just formed held requests back at the cap.
	capSince float64
	capHeld  bool
	h        *hists
	families []family
}

func newServer(cfg ServerConfig, index int, seed int64, start time.Time) (*Server, error) {
	p, ferr := resolve(cfg.Engine, cfg.Settings, cfg.Model, cfg.GPU)
	if ferr != nil {
		return nil, fmt.Errorf("server %s: settings.%s: %s", cfg.Name, ferr.field, ferr.msg)
	}
	s := &Server{
		observed:     map[string]float64{},
		capSince:     -1,
		cfg:          cfg,
		user:         cfg.Settings,
		p:            p,
		start:        start,
		rng:          rand.New(rand.NewPCG(uint64(seed), uint64(index)+1)),
		nextDeadline: math.Inf(1),
	}
	s.cfg.Settings = p.s
	s.nextArrival = s.cfg.Workload.interarrival(s.rng, 0)
	s.resetRatio()
	s.h = newHists(s)
	s.families = buildFamilies(s)
	return s, nil
}

// Name is the server's name from the fleet file.
func (s *Server) Name() string { return s.cfg.Name }

// Listen is the server's listen address.
func (s *Server) Listen() string { return s.cfg.Listen }

// Engine is the server's engine.
func (s *Server) Engine() Engine { return s.cfg.Engine }

// Advance runs the simulation up to time to. Earlier times are ignored.
func (s *Server) Advance(to time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(to.Sub(s.start).Seconds())
}

func (s *Server) advance(target float64) {
	for s.now < target {
		for s.nextEvent < len(s.cfg.Events) && secs(s.cfg.Events[s.nextEvent].At) <= s.now {
			s.applyEvent(s.cfg.Events[s.nextEvent])
			s.nextEvent++
		}
		limit := target
		if s.nextEvent < len(s.cfg.Events) {
			limit = min(limit, secs(s.cfg.Events[s.nextEvent].At))
		}
		if s.cfg.Engine == EngineSGLang && s.now >= s.st.intervalStart+logInterval {
			s.flushInterval()
		}
		s.arrive()
		if s.now >= s.nextDeadline {
			s.expire()
		}
		var dt float64
		if len(s.running) > 0 || s.waiting.len() > 0 {
			switch s.cfg.Engine {
			case EngineVLLM:
				dt = s.stepVLLM(limit)
			case EngineSGLang:
				dt = s.stepSGLang(limit)
			case EngineTGI:
				dt = s.stepTGI(limit)
			}
		}
		if dt > 0 {
			s.now += dt
			s.observeCap()
			s.observeRetractionRate()
			continue
		}
		// Nothing to compute: jump to the next thing that can change the state.
		next := min(limit, s.nextArrival, s.nextDeadline)
		if s.cfg.Engine == EngineSGLang {
			next = min(next, s.st.intervalStart+logInterval)
		}
		if next <= s.now {
			next = limit
		}
		s.now = next
		s.observeRetractionRate()
	}
}

// arrive creates every request that arrived by now.
func (s *Server) arrive() {
	w := &s.cfg.Workload
	for s.nextArrival <= s.now {
		t := s.nextArrival
		s.newRequest(t)
		s.nextArrival = t + w.interarrival(s.rng, t)
	}
}

func (s *Server) newRequest(t float64) {
	w := &s.cfg.Workload
	s.st.arrived++
	r := s.alloc()
	r.arrival = t
	r.frontend = s.frontendDelay(t)
	r.prompt = w.PromptTokens.sample(s.rng)
	r.maxTokens = w.MaxTokens
	out := w.OutputTokens.sample(s.rng)
	if out >= r.maxTokens {
		out, r.length = r.maxTokens, true
	}
	switch s.cfg.Engine {
	case EngineTGI:
		st := &s.p.s
		if s.waiting.len()+len(s.running) >= st.MaxConcurrentRequests {
			s.st.failOverloaded++
			s.release(r)
			return
		}
		if r.prompt > st.MaxInputTokens || r.prompt+r.maxTokens > st.MaxTotalTokens {
			s.st.failValidation++
			s.release(r)
			return
		}
		s.h.tgiValidation.observe(0.0002 + 2e-7*float64(r.prompt))
	default:
		// Clients keep prompts inside the context; generation stops at the length limit.
		r.prompt = min(r.prompt, s.p.maxModelLen-1)
		if r.prompt+out > s.p.maxModelLen {
			out, r.length = s.p.maxModelLen-r.prompt, true
		}
	}
	r.output = out
	s.waiting.pushBack(r)
	s.nextDeadline = min(s.nextDeadline, t+secs(w.Timeout))
}

func (s *Server) alloc() *request {
	var r *request
	if n := len(s.pool); n > 0 {
		r = s.pool[n-1]
		s.pool = s.pool[:n-1]
		*r = request{}
	} else {
		r = &request{}
	}
	r.firstSeen, r.firstTok = -1, -1
	return r
}

func (s *Server) release(r *request) { s.pool = append(s.pool, r) }

// expire aborts queued requests that waited past the client timeout (counted from
// arrival, so preempted requests back in the queue can time out too).
func (s *Server) expire() {
	timeout := secs(s.cfg.Workload.Timeout)
	s.nextDeadline = math.Inf(1)
	s.waiting.filter(func(r *request) bool {
		if s.now-r.arrival >= timeout {
			s.abort(r)
			return false
		}
		s.nextDeadline = min(s.nextDeadline, r.arrival+timeout)
		return true
	})
}

func (s *Server) abort(r *request) {
	s.st.abort++
	if s.cfg.Engine == EngineTGI {
		s.st.failDropped++
	}
	s.release(r)
}

// prefixHit is the prompt prefix found in the cache, in whole allocation units, leaving at
// least one token to compute.
func (s *Server) prefixHit(r *request) int {
	if !s.p.prefixCache || s.cfg.Workload.SharedPrefixFraction == 0 {
		return 0
	}
	hit := int(s.cfg.Workload.SharedPrefixFraction*float64(r.prompt)) / s.p.unit * s.p.unit
	return min(hit, (r.prompt-1)/s.p.unit*s.p.unit)
}

// admit moves the head of the queue to the running batch, counting prefix-cache lookups.
func (s *Server) admit(r *request, hit int) {
	s.waiting.popFront()
	s.running = append(s.running, r)
	r.hit, r.computed, r.units = hit, hit, 0
	// vLLM V1 records prefix-cache stats only when caching is on
	// (KVCacheManager.get_computed_blocks returns before counting otherwise),
	// so its query counter stays flat with caching off.
	if s.cfg.Engine != EngineVLLM || s.p.prefixCache {
		s.st.prefixQueries += float64(r.prompt)
		s.st.prefixHits += float64(hit)
	}
	s.st.intervalQueries += float64(r.prompt)
	s.st.intervalHits += float64(hit)
	if r.firstSeen < 0 {
		r.firstSeen = s.now
		switch s.cfg.Engine {
		case EngineSGLang:
			s.h.sgQueue.observe(s.now - r.arrival)
		case EngineTGI:
			s.h.tgiQueue.observe(s.now - r.arrival)
		}
	}
}

// requeue sends a running request back to the front of the queue, dropping its KV.
func (s *Server) requeue(i int) *request {
	r := s.running[i]
	s.running = slices.Delete(s.running, i, i+1)
	s.used -= r.units
	r.units, r.computed, r.hit = 0, 0, 0
	s.waiting.pushFront(r)
	return r
}

// emit records k tokens generated by r, the last at time t; t1 is the time per step when
// k consecutive decode steps ran (0 for a single step).
func (s *Server) emit(r *request, t float64, k int, t1 float64) {
	if r.firstTok < 0 {
		r.firstTok = t
		s.onFirstToken(r, t)
		k--
		r.generated++
		s.st.genTokens++
		s.st.intervalGen++
		r.lastTok = t
		if k == 0 {
			return
		}
	}
	first := t - float64(k-1)*t1
	s.onTokens(first-r.lastTok, 1)
	if k > 1 {
		s.onTokens(t1, uint64(k-1))
	}
	r.generated += k
	s.st.genTokens += float64(k)
	s.st.intervalGen += float64(k)
	r.lastTok = t
}

// frontendDelay is the time a request arriving at t spends in the API
// server outside the engine: its own CPU time c plus the M/D/1 wait behind
// the other requests, with the arrivals split evenly among vLLM's API
// server processes. The utilization is capped below 1, where a real
// frontend's queue would grow without bound.
func (s *Server) frontendDelay(t float64) float64 {
	c := s.cfg.GPU.FrontendMs / 1000
	if c <= 0 {
		return 0
	}
	n := 1.0
	if s.cfg.Engine == EngineVLLM {
		n = float64(max(s.p.s.APIServerCount, 1))
	}
	rho := min(s.cfg.Workload.rateAt(t)*c/n, 0.98)
	return c + rho*c/(2*(1-rho))
}

func (s *Server) onFirstToken(r *request, t float64) {
	ttft := t - r.arrival + r.frontend
	switch s.cfg.Engine {
	case EngineVLLM:
		s.h.ttft.observe(ttft)
		s.st.promptTokens += float64(r.prompt)
	case EngineSGLang:
		s.h.ttft.observe(ttft)
	}
}

func (s *Server) onTokens(gap float64, n uint64) {
	if s.cfg.Engine != EngineTGI {
		s.h.itl.observeN(gap, n)
	}
}

// finish completes r at time t and releases it; the caller removes it from running.
func (s *Server) finish(r *request, t float64) {
	s.used -= r.units
	e2e := t - r.arrival + r.frontend
	s.st.finished++
	if r.length {
		s.st.length++
	} else {
		s.st.stop++
	}
	h := s.h
	switch s.cfg.Engine {
	case EngineVLLM:
		h.e2e.observe(e2e)
		// vLLM keeps the first scheduling time across preemptions.
		h.queue.observe(r.firstSeen - r.arrival)
		h.inference.observe(t - r.firstSeen)
		h.prefill.observe(r.firstTok - r.firstSeen)
		h.decode.observe(t - r.firstTok)
		h.promptLen.observe(float64(r.prompt))
		h.genLen.observe(float64(r.generated))
		h.maxGen.observe(float64(r.maxTokens))
		h.paramsN.observe(1)
		h.paramsMax.observe(float64(r.maxTokens))
		if r.generated > 1 {
			h.tpot.observe((t - r.firstTok) / float64(r.generated-1))
		}
	case EngineSGLang:
		h.e2e.observe(e2e)
		h.promptLen.observe(float64(r.prompt))
		h.genLen.observe(float64(r.generated))
		s.st.promptTokens += float64(r.prompt)
		s.st.cachedTokens += float64(r.hit)
	case EngineTGI:
		inf := t - r.firstSeen
		h.tgiDuration.observe(e2e)
		h.tgiInference.observe(inf)
		h.tgiMeanTPT.observe(inf / float64(max(r.generated, 1)))
		h.tgiGenerated.observe(float64(r.generated))
		h.tgiInput.observe(float64(r.prompt))
		h.tgiMaxNew.observe(float64(r.maxTokens))
		s.st.promptTokens += float64(r.prompt)
	}
	s.release(r)
}

// finishDone removes and finishes running requests that have produced all their tokens.
func (s *Server) finishDone(t float64) {
	keep := s.running[:0]
	for _, r := range s.running {
		if r.generated >= r.output && r.firstTok >= 0 {
			s.finish(r, t)
			continue
		}
		keep = append(keep, r)
	}
	clear(s.running[len(keep):])
	s.running = keep
}

// decodeSpan returns how many pure decode steps can run back to back: until a request
// finishes, the time limit, the next admissible arrival or deadline, at most maxK.
func (s *Server) decodeSpan(limit, t0 float64, admissible bool, maxK int) int {
	k := maxK
	for _, r := range s.running {
		k = min(k, r.output-r.generated)
	}
	steps := func(until float64) int {
		n := math.Ceil((until - s.now) / t0)
		switch {
		case n < 1:
			return 1
		case n > float64(maxK):
			// Also covers +Inf (no arrival or deadline ahead), which must not reach int().
			return maxK
		}
		return int(n)
	}
	k = min(k, steps(limit), steps(s.nextDeadline))
	if admissible {
		k = min(k, steps(s.nextArrival))
	}
	if s.cfg.Engine == EngineSGLang {
		k = min(k, steps(s.st.intervalStart+logInterval))
	}
	return max(k, 1)
}

// decodeRun performs k decode steps of the whole running batch (all past prefill).
func (s *Server) decodeRun(k int) float64 {
	b := len(s.running)
	ctx := 0.0
	for _, r := range s.running {
		ctx += float64(r.computed)
	}
	mid := ctx + float64(b)*float64(k-1)/2
	t1 := s.decodeTokenTime(b, mid)
	dt := float64(k) * t1
	end := s.now + dt
	steady, done := 0, false
	for _, r := range s.running {
		r.computed += k
		if s.cfg.Engine != EngineTGI {
			u := s.p.units(r.computed - r.hit)
			s.used += u - r.units
			r.units = u
		}
		if r.lastTok == s.now {
			// Decoded in the previous step too: every gap is one step; count them in bulk.
			steady++
			r.generated += k
			r.lastTok = end
		} else {
			s.emit(r, end, k, t1)
		}
		done = done || r.generated >= r.output
	}
	if steady > 0 {
		n := steady * k
		s.onTokens(t1, uint64(n))
		s.st.genTokens += float64(n)
		s.st.intervalGen += float64(n)
	}
	s.onDecodeSteps(b, k, t1)
	s.onSpecTokens(float64(b * k))
	if done {
		s.finishDone(end)
	}
	return dt
}

func (s *Server) onDecodeSteps(batch, k int, t1 float64) {
	switch s.cfg.Engine {
	case EngineVLLM:
		s.h.iterTokens.observeN(float64(batch), uint64(k))
	case EngineTGI:
		s.st.decodeSteps += float64(k)
		s.h.tgiBatchInf[1].observeN(t1, uint64(k))
		s.h.tgiForward[1].observeN(t1-s.p.overhead/2, uint64(k))
		s.h.tgiDecodeDur[1].observeN(s.p.overhead/4, uint64(k))
		s.h.tgiFilter[1].observeN(s.p.overhead/4, uint64(k))
	}
}
