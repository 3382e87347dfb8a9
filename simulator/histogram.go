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
