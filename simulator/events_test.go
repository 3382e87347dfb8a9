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
		{name: "ten in five minutes is not yet", times: steps(100, 25, 10)},
		{name: "the eleventh within five minutes", times: steps(100, 25, 12), want: 350},
		{name: "old retractions leave the span", times: append(steps(0, 1, 10), steps(300, 60, 5)...)},
		{name: "a burst after a quiet start", times: append(steps(0, 100, 3), steps(1000, 5, 11)...), want: 1050},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{observed: map[string]float64{}}
			for _, at := range tt.times {
				s.now = at
				s.observeRetraction()
			}
			first, ok := s.Observed(EventFirstRetraction)
			if !ok || first != time.Duration(tt.times[0]*float64(time.Second)) {
				t.Errorf("first_retraction at %s (%v), want %gs", first, ok, tt.times[0])
			}
			got, ok := s.Observed(EventSustainedRetraction)
			switch {
			case tt.want == 0 && ok:
				t.Errorf("sustained_retraction at %s, want none", got)
			case tt.want != 0 && got != time.Duration(tt.want*float64(time.Second)):
				t.Errorf("sustained_retraction at %s (%v), want %gs", got, ok, tt.want)
			}
		})
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
