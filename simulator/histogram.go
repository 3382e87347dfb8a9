package simulator

import "sort"

// histogram is a cumulative-on-write Prometheus histogram; bounds are shared, never mutated.
type histogram struct {
	bounds []float64
	les    []string // le label values as the engine prints them, "+Inf" last
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64, format func(float64) string) *histogram {
	les := make([]string, 0, len(bounds)+1)
	for _, b := range bounds {
		les = append(les, format(b))
	}
	return &histogram{bounds: bounds, les: append(les, "+Inf"), counts: make([]uint64, len(bounds)+1)}
}

// observeN records n observations of v.
func (h *histogram) observeN(v float64, n uint64) {
	if n == 0 {
		return
	}
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i] += n
	h.sum += v * float64(n)
	h.count += n
}

func (h *histogram) observe(v float64) { h.observeN(v, 1) }

// quantileOf estimates the q-quantile by linear interpolation, as histogram_quantile does.
func quantileOf(bounds []float64, counts []uint64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum uint64
	for i, c := range counts {
		if float64(cum+c) >= rank && c > 0 {
			if i == len(bounds) {
				return bounds[len(bounds)-1]
			}
			lo := 0.0
			if i > 0 {
				lo = bounds[i-1]
			}
			return lo + (bounds[i]-lo)*(rank-float64(cum))/float64(c)
		}
		cum += c
	}
	return bounds[len(bounds)-1]
}

// buckets125 is vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max.
func buckets125(maxValue int) []float64 {
	var b []float64
	for exp := 1; ; exp *= 10 {
		for _, m := range []int{1, 2, 5} {
			v := m * exp
			if v > maxValue {
				return b
			}
			b = append(b, float64(v))
		}
	}
}

// tgiDurationBuckets are TGI's 35 geometric buckets: 0.0001 x 1.5^k, computed as TGI does.
func tgiDurationBuckets() []float64 {
	b := make([]float64, 0, 35)
	v := 0.0001
	for range 35 {
		v *= 1.5
		b = append(b, v)
	}
	return b
}

// tgiLinearBuckets are TGI's 100 linear buckets max/100 x k.
func tgiLinearBuckets(maxValue int) []float64 {
	b := make([]float64, 0, 100)
	step := float64(maxValue) / 100.0
	for k := 1; k <= 100; k++ {
		b = append(b, step*float64(k))
	}
	return b
}
