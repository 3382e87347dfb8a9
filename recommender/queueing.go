package recommender

import "math"

// ErlangC is the probability that an arrival waits in an M/M/c queue with
// c servers and offered load a = λ/μ (in Erlangs). It is 1 when a ≥ c
// (unstable). It uses the Erlang B recursion B(k) = a·B(k−1)/(k + a·B(k−1))
// and C = B / (1 − (a/c)(1 − B)), stable for large c.
func ErlangC(c int, a float64) float64 {
	if c <= 0 || a >= float64(c) {
		return 1
	}
	if a <= 0 {
		return 0
	}
	b := 1.0
	for k := 1; k <= c && b > 0; k++ {
		b = a * b / (float64(k) + a*b)
	}
	rho := a / float64(c)
	return b / (1 - rho*(1-b))
}

// Queue is an M/M/c queue: Servers slots, arrival rate Lambda (1/s),
// mean service time Service (s).
type Queue struct {
	Servers int
	Lambda  float64
	Service float64
}

// Load is the offered load a = λ·S (Little's law: mean busy servers).
func (q Queue) Load() float64 { return q.Lambda * q.Service }

// Utilization is ρ = a / c.
func (q Queue) Utilization() float64 { return q.Load() / float64(q.Servers) }

// headroom is cμ − λ, the rate at which a queue drains.
func (q Queue) headroom() float64 { return float64(q.Servers)/q.Service - q.Lambda }

// MeanWait is Wq = C(c, a) / (cμ − λ); +Inf when unstable.
func (q Queue) MeanWait() float64 {
	if q.Utilization() >= 1 {
		return math.Inf(1)
	}
	return ErlangC(q.Servers, q.Load()) / q.headroom()
}

// WaitQuantile is the p-quantile of the queue wait: P(Wq > t) =
// C·e^{−(cμ−λ)t}, so t = ln(C/(1−p)) / (cμ − λ), or 0 when fewer than
// 1−p of the arrivals wait at all; +Inf when unstable.
func (q Queue) WaitQuantile(p float64) float64 {
	if q.Utilization() >= 1 {
		return math.Inf(1)
	}
	c := ErlangC(q.Servers, q.Load())
	if c <= 1-p {
		return 0
	}
	return math.Log(c/(1-p)) / q.headroom()
}

// MeanWaiting is Lq = λ·Wq (Little's law on the queue).
func (q Queue) MeanWaiting() float64 { return q.Lambda * q.MeanWait() }
