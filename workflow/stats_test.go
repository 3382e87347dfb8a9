package workflow

import (
	"math"
	"testing"
)

// The expected values were computed by hand from the rank sums:
//
//	x=1,2,3 y=4,5,6: R1=6, U=0, mu=4.5, var=3*3/12*7=5.25,
//	  z=(0-4.5+0.5)/sqrt(5.25)=-1.745743, p=erfc(1.745743/sqrt 2)=0.080856.
//	x=1,2,2,3 y=2,3,4,4: ranks 1 | 3,3,3 | 5.5,5.5 | 7.5,7.5, R1=12.5, U=2.5,
//	  mu=8, ties 3,2,2 give sum(t^3-t)=36, var=16/12*(9-36/56)=11.142857,
//	  z=(2.5-8+0.5)/3.338092=-1.497862, p=0.134169.
//	x=5,7,9,11,13 y=1,2,3,4: every x above every y, U=20, mu=10,
//	  var=20/12*10=16.6667, z=(20-10-0.5)/4.082483=2.327015, p=0.019964.
func TestMannWhitney(t *testing.T) {
	cases := []struct {
		name        string
		x, y        []float64
		u, z, p, hl float64
	}{
		{"separated", []float64{1, 2, 3}, []float64{4, 5, 6}, 0, -1.745743, 0.080856, -3},
		{"ties", []float64{1, 2, 2, 3}, []float64{2, 3, 4, 4}, 2.5, -1.497862, 0.134169, -1},
		{"x above", []float64{5, 7, 9, 11, 13}, []float64{1, 2, 3, 4}, 20, 2.327015, 0.019964, 6.5},
		{"all tied", []float64{2, 2, 2}, []float64{2, 2}, 3, 0, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := MannWhitney(tc.x, tc.y)
			if math.Abs(r.U-tc.u) > 1e-9 || math.Abs(r.Z-tc.z) > 1e-5 || math.Abs(r.P-tc.p) > 1e-5 || math.Abs(r.Shift-tc.hl) > 1e-9 {
				t.Fatalf("got U=%v Z=%v P=%v HL=%v, want U=%v Z=%v P=%v HL=%v", r.U, r.Z, r.P, r.Shift, tc.u, tc.z, tc.p, tc.hl)
			}
			// Swapping the samples mirrors U and Z and keeps P.
			s := MannWhitney(tc.y, tc.x)
			if math.Abs(s.U-(float64(len(tc.x)*len(tc.y))-tc.u)) > 1e-9 || math.Abs(s.Z+r.Z) > 1e-9 || math.Abs(s.P-r.P) > 1e-12 {
				t.Fatalf("swapped: got U=%v Z=%v P=%v", s.U, s.Z, s.P)
			}
		})
	}
	if r := MannWhitney(nil, []float64{1}); !math.IsNaN(r.P) {
		t.Fatalf("empty sample: P = %v, want NaN", r.P)
	}
}
