package simulator

import (
	"slices"
	"time"
)

// Physical events a truth interval can start at (Truth.FromEvent). Each is
// observed exactly by the simulator, so the harness can place the start of a
// bottleneck where it physically began in that very replay, whatever the seed.
const (
	// EventFirstPreemption is vLLM's first preemption: the KV cache ran out.
	EventFirstPreemption = "first_preemption"
	// EventFirstRetraction is SGLang's first retraction: the KV cache ran out.
	EventFirstRetraction = "first_retraction"
	// EventSustainedRetraction is the first time SGLang's retraction rate,
	// as a one-minute rate averaged over five minutes, exceeded two a minute:
	// twice the one a minute that SGLang's tuning guide calls normal. A lone
	// retraction at the onset of a ramp is not yet the bottleneck. The rate
	// is the one-minute rate a monitoring system reads, computed here from
	// the exact retraction times rather than from scrapes.
	EventSustainedRetraction = "sustained_retraction"
	// EventCapBound is vLLM's end of the first minute in which every step's
	// batch was at max_num_seqs with requests left waiting: the cap, not
	// memory or compute, has started to hold the batch. A batch that
	// touches the cap now and then is not yet bound by it.
	EventCapBound = "cap_bound"
)

const (
	sustainedRetractionRate   = 2.0   // per minute
	sustainedRetractionWindow = 300.0 // seconds the one-minute rate is averaged over
	rateWindow                = 60.0  // seconds
	capBoundSpan              = 60.0  // seconds
)

// events lists the events a truth interval can start at.
func events() []string {
	return []string{EventFirstPreemption, EventFirstRetraction, EventSustainedRetraction, EventCapBound}
}

// knownEvent reports whether name is an event the simulator observes.
func knownEvent(name string) bool { return slices.Contains(events(), name) }

// observeRetraction records a retraction at the current time.
func (s *Server) observeRetraction() {
	s.observe(EventFirstRetraction)
	if _, ok := s.observed[EventSustainedRetraction]; !ok {
		s.retractedAt = append(s.retractedAt, s.now)
	}
}

// observeRetractionRate checks, after each step, whether the retraction rate
// has become sustained. A retraction at x adds 1/rateWindow to the
// one-minute rate during [x, x+rateWindow), so its share of the rate's mean
// over (now-window, now] is the overlap of the two spans over rateWindow.
func (s *Server) observeRetractionRate() {
	if len(s.retractedAt) == 0 {
		return
	}
	from := s.now - sustainedRetractionWindow
	cut := 0
	for cut < len(s.retractedAt) && s.retractedAt[cut]+rateWindow <= from {
		cut++
	}
	s.retractedAt = s.retractedAt[cut:]
	counted := 0.0
	for _, x := range s.retractedAt {
		counted += (min(x+rateWindow, s.now) - max(x, from)) / rateWindow
	}
	if counted > sustainedRetractionRate*sustainedRetractionWindow/60 {
		s.observe(EventSustainedRetraction)
		s.retractedAt = nil
	}
}

// noteCap records, once a step's batch is formed, whether the cap held
// requests back. Only vLLM's scheduler calls it.
func (s *Server) noteCap() {
	s.capHeld = s.waiting.len() > 0 && len(s.running) >= s.p.maxSeqs
}

// observeCap follows the batch against its cap after each step.
func (s *Server) observeCap() {
	held := s.capHeld
	s.capHeld = false
	if !held {
		s.capSince = -1
		return
	}
	if s.capSince < 0 {
		s.capSince = s.now
	}
	if _, ok := s.observed[EventCapBound]; !ok && s.now-s.capSince >= capBoundSpan {
		s.observed[EventCapBound] = s.capSince + capBoundSpan
	}
}

// observe records the first time an event happens.
func (s *Server) observe(name string) {
	if _, ok := s.observed[name]; !ok {
		s.observed[name] = s.now
	}
}

// Observed returns when the named event first happened, relative to the start
// of the run, and false when it has not happened yet.
func (s *Server) Observed(name string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.observed[name]
	return time.Duration(at * float64(time.Second)), ok
}
