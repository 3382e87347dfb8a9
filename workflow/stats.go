package workflow

import (
	"math"
	"slices"
)

// MannWhitneyResult is the outcome of a two-sided Mann-Whitney U test of x
// against y with the normal approximation.
type MannWhitneyResult struct {
	// U is the statistic of x: the number of pairs (xi, yj) with xi > yj,
	// ties counting one half.
	U float64
	// Z is the standardised statistic, with tie and continuity correction.
	Z float64
	// P is the two-sided p-value.
	P float64
	// Shift is the Hodges-Lehmann estimate of the shift x - y: the median
	// of all pairwise differences.
	Shift float64
}

// MannWhitney tests whether x and y come from the same distribution. The
// variance is corrected for ties, and a continuity correction of one half
// is applied, as scipy's mannwhitneyu(method="asymptotic") does. When every
// value is tied the variance is zero and P is 1. Both samples must be
// non-empty; empty input gives P = NaN.
func MannWhitney(x, y []float64) MannWhitneyResult {
	n1, n2 := float64(len(x)), float64(len(y))
	if len(x) == 0 || len(y) == 0 {
		return MannWhitneyResult{U: math.NaN(), Z: math.NaN(), P: math.NaN(), Shift: math.NaN()}
	}
	type obs struct {
		v float64
		x bool
	}
	all := make([]obs, 0, len(x)+len(y))
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(a, b obs) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	var rankSumX, tieTerm float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		// Positions i..j-1 share the average of ranks i+1..j.
		rank := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if all[k].x {
				rankSumX += rank
			}
		}
		t := float64(j - i)
		tieTerm += t*t*t - t
		i = j
	}
	n := n1 + n2
	u := rankSumX - n1*(n1+1)/2
	mu := n1 * n2 / 2
	variance := n1 * n2 / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	r := MannWhitneyResult{U: u, Shift: hodgesLehmann(x, y)}
	if variance <= 0 {
		r.P = 1
		return r
	}
	d := u - mu
	switch {
	case d > 0:
		d -= 0.5
	case d < 0:
		d += 0.5
	}
	r.Z = d / math.Sqrt(variance)
	r.P = math.Min(1, math.Erfc(math.Abs(r.Z)/math.Sqrt2))
	return r
}

// hodgesLehmann returns the median of all differences xi - yj.
func hodgesLehmann(x, y []float64) float64 {
	d := make([]float64, 0, len(x)*len(y))
	for _, a := range x {
		for _, b := range y {
			d = append(d, a-b)
		}
	}
	slices.Sort(d)
	m := len(d) / 2
	if len(d)%2 == 1 {
		return d[m]
	}
	return (d[m-1] + d[m]) / 2
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
