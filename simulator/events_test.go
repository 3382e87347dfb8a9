package simulator

import (
	"testing"
	"time"
)

func TestSustainedRetraction(t *testing.T) {
	tests := []struct {
		name  string
		times []float64 // seconds of each retraction
		want  float64   // when sustained_retraction happened; 0 for never
	}{
		{name: "one a minute is normal", times: steps(0, 60, 30)},
		// 11 at once: the one-minute rate holds them for a minute, and their
		// share of the five-minute mean passes 10 after 60 × 10/11 s.
		{name: "a burst of eleven", times: steps(100, 0, 11), want: 155},
		{name: "a burst of ten stays at the limit", times: steps(100, 0, 10)},
		// 6 from 0 still count fully when 6 more come at 200; the mean
		// passes 10 once the second six have counted for 40 s.
		{name: "two bursts within the window", times: append(steps(0, 0, 6), steps(200, 0, 6)...), want: 241},
		{name: "two bursts too far apart", times: append(steps(0, 0, 6), steps(400, 0, 6)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{observed: map[string]float64{}}
			next := 0
			for at := 0.0; at <= tt.times[len(tt.times)-1]+400; at++ {
				s.now = at
				for next < len(tt.times) && tt.times[next] <= at {
					s.observeRetraction()
					next++
				}
				s.observeRetractionRate()
			}
			first, ok := s.Observed(EventFirstRetraction)
			if !ok || first != time.Duration(tt.times[0]*float64(time.Second)) {
				t.Errorf("first_retraction at %s (%v), want %gs", first, ok, tt.times[0])
			}
			checkObserved(t, s, EventSustainedRetraction, tt.want)
		})
	}
}

// checkObserved checks that event happened at want seconds, or never when
// want is 0.
func checkObserved(t *testing.T, s *Server, event string, want float64) {
	t.Helper()
	got, ok := s.Observed(event)
	switch {
	case want == 0 && ok:
		t.Errorf("%s at %s, want none", event, got)
	case want != 0 && got != time.Duration(want*float64(time.Second)):
		t.Errorf("%s at %s (%v), want %gs", event, got, ok, want)
	}
}

// steps returns n times from start, every gap seconds.
func steps(start, gap float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start + float64(i)*gap
	}
	return out
}

func TestCapBound(t *testing.T) {
	type step struct {
		at   float64 // seconds, the end of a step
		held bool    // the step's batch was at its cap with requests waiting
	}
	tests := []struct {
		name  string
		steps []step
		want  float64 // when cap_bound happened; 0 for never
	}{
		{name: "never at the cap", steps: []step{{10, false}, {70, false}, {200, false}}},
		{name: "touches the cap now and then", steps: []step{{10, true}, {50, true}, {65, false}, {100, true}, {150, true}, {155, false}}},
		{name: "held for a minute", steps: []step{{10, false}, {20, true}, {50, true}, {79, true}, {81, true}}, want: 80},
		{name: "a step below the cap restarts the minute", steps: []step{{20, true}, {60, true}, {61, false}, {62, true}, {121, true}, {123, true}}, want: 122},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{observed: map[string]float64{}, capSince: -1}
			for _, st := range tt.steps {
				s.now, s.capHeld = st.at, st.held
				s.observeCap()
			}
			checkObserved(t, s, EventCapBound, tt.want)
		})
	}
}
