package simulator

import "time"

// Physical events a truth interval can start at (Truth.FromEvent). Each is
// observed exactly by the simulator, so the harness can place the start of a
// bottleneck where it physically began in that very replay, whatever the seed.
const (
	// EventFirstPreemption is vLLM's first preemption: the KV cache ran out.
	EventFirstPreemption = "first_preemption"
	// EventFirstRetraction is SGLang's first retraction: the KV cache ran out.
	EventFirstRetraction = "first_retraction"
	// EventSustainedRetraction is the first time SGLang has retracted more
	// than sustainedRetractions requests within sustainedRetractionSpan: twice
	// the one a minute that SGLang's tuning guide calls normal. A lone
	// retraction at the onset of a ramp is not yet the bottleneck.
	EventSustainedRetraction = "sustained_retraction"
)

const (
	sustainedRetractions    = 10
	sustainedRetractionSpan = 300.0 // seconds
)

// knownEvent reports whether name is an event the simulator observes.
func knownEvent(name string) bool {
	switch name {
	case EventFirstPreemption, EventFirstRetraction, EventSustainedRetraction:
		return true
	}
	return false
}

// observeRetraction records a retraction at the current time and the events
// it completes.
func (s *Server) observeRetraction() {
	s.observe(EventFirstRetraction)
	cut := 0
	for cut < len(s.retractedAt) && s.retractedAt[cut] <= s.now-sustainedRetractionSpan {
		cut++
	}
	s.retractedAt = append(s.retractedAt[cut:], s.now)
	if len(s.retractedAt) > sustainedRetractions {
		s.observe(EventSustainedRetraction)
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
