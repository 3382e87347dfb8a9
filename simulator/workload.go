package simulator

import (
	"math"
	"math/rand/v2"
)

// rateAt is the arrival rate at t seconds after the start.
func (w *Workload) rateAt(t float64) float64 {
	if len(w.Profile) == 0 {
		return w.Rate
	}
	pts := w.Profile
	if t <= secs(pts[0].At) {
		return pts[0].Rate
	}
	for i := 1; i < len(pts); i++ {
		t1 := secs(pts[i].At)
		if t <= t1 {
			t0 := secs(pts[i-1].At)
			f := (t - t0) / (t1 - t0)
			return pts[i-1].Rate + f*(pts[i].Rate-pts[i-1].Rate)
		}
	}
	return pts[len(pts)-1].Rate
}

// nextRateChange is the next profile point after t, or +Inf.
func (w *Workload) nextRateChange(t float64) float64 {
	for _, p := range w.Profile {
		if secs(p.At) > t {
			return secs(p.At)
		}
	}
	return math.Inf(1)
}

// interarrival samples the time to the next Poisson arrival after t.
func (w *Workload) interarrival(rng *rand.Rand, t float64) float64 {
	r := w.rateAt(t)
	if r <= 0 {
		return w.nextRateChange(t) - t
	}
	return rng.ExpFloat64() / r
}

// sample draws a length from the distribution, at least 1.
func (d *Dist) sample(rng *rand.Rand) int {
	mean := d.Mean
	if d.TailFraction > 0 && rng.Float64() < d.TailFraction {
		mean = d.TailMean
	}
	v := mean
	if d.CV > 0 {
		s2 := math.Log1p(d.CV * d.CV)
		v = math.Exp(math.Log(mean) - s2/2 + math.Sqrt(s2)*rng.NormFloat64())
	}
	n := int(math.Round(v))
	if d.Max > 0 && n > d.Max {
		n = d.Max
	}
	return max(n, d.Min, 1)
}

func secs(d Duration) float64 { return float64(d) / 1e9 }
