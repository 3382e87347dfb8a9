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
)

// knownEvent reports whether name is an event the simulator observes.
func knownEvent(name string) bool {
	return name == EventFirstPreemption || name == EventFirstRetraction
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
