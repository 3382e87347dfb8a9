package instantql

import (
	"math"
	"sort"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/kahansum"
)

// overTimeFuncs are the functions over the float samples of a range
// that the package computes, as the engine does. A range with histograms
// in it is left to the engine.
var overTimeFuncs = map[string]func(floats []promql.FPoint, param float64) float64{
	"avg_over_time": avgOverTime,
	"sum_over_time": sumOverTime,
	"max_over_time": func(fs []promql.FPoint, _ float64) float64 {
		return compareOverTime(fs, func(cur, m float64) bool { return cur > m || math.IsNaN(m) })
	},
	"min_over_time": func(fs []promql.FPoint, _ float64) float64 {
		return compareOverTime(fs, func(cur, m float64) bool { return cur < m || math.IsNaN(m) })
	},
	"count_over_time":    func(fs []promql.FPoint, _ float64) float64 { return float64(len(fs)) },
	"last_over_time":     func(fs []promql.FPoint, _ float64) float64 { return fs[len(fs)-1].F },
	"quantile_over_time": quantileOverTime,
	"stdvar_over_time":   func(fs []promql.FPoint, _ float64) float64 { return varianceOverTime(fs) },
	"stddev_over_time":   func(fs []promql.FPoint, _ float64) float64 { return math.Sqrt(varianceOverTime(fs)) },
}

// avgOverTime is the mean of floats with Kahan summation, switching to
// an incremental mean where the sum would overflow.
func avgOverTime(floats []promql.FPoint, _ float64) float64 {
	var (
		sum, count      = floats[0].F, 1.
		mean, kahanC    float64
		incrementalMean bool
	)
	for i, f := range floats[1:] {
		count = float64(i + 2)
		if !incrementalMean {
			newSum, newC := kahansum.Inc(f.F, sum, kahanC)
			if !math.IsInf(newSum, 0) {
				sum, kahanC = newSum, newC
				continue
			}
			incrementalMean = true
			mean = sum / (count - 1)
			kahanC /= count - 1
		}
		q := (count - 1) / count
		mean, kahanC = kahansum.Inc(f.F/count, q*mean, q*kahanC)
	}
	if incrementalMean {
		return mean + kahanC
	}
	return sum/count + kahanC/count
}

func sumOverTime(floats []promql.FPoint, _ float64) float64 {
	var sum, c float64
	for _, f := range floats {
		sum, c = kahansum.Inc(f.F, sum, c)
	}
	if math.IsInf(sum, 0) {
		return sum
	}
	return sum + c
}

// varianceOverTime is the population variance of floats, its running
// mean and sum of squared deviations kept with Kahan compensation.
func varianceOverTime(floats []promql.FPoint) float64 {
	var count, mean, cMean, aux, cAux float64
	for _, f := range floats {
		count++
		delta := f.F - (mean + cMean)
		mean, cMean = kahansum.Inc(delta/count, mean, cMean)
		aux, cAux = kahansum.Inc(delta*(f.F-(mean+cMean)), aux, cAux)
	}
	return (aux + cAux) / count
}

// linearRegression is the least-squares line through floats (at least
// two): its slope per second, and its value at interceptTime. The sums
// are kept with Kahan compensation; a range of one value throughout has
// slope 0, or NaN where that value is infinite.
func linearRegression(floats []promql.FPoint, interceptTime int64) (slope, intercept float64) {
	var (
		n                        float64
		sumX, sumY, sumXY, sumX2 float64
		cX, cY, cXY, cX2         float64
		first                    = floats[0].F
		constant                 = true
	)
	for _, p := range floats {
		constant = constant && p.F == first
		n++
		x := float64(p.T-interceptTime) / 1e3
		sumX, cX = kahansum.Inc(x, sumX, cX)
		sumY, cY = kahansum.Inc(p.F, sumY, cY)
		sumXY, cXY = kahansum.Inc(x*p.F, sumXY, cXY)
		sumX2, cX2 = kahansum.Inc(x*x, sumX2, cX2)
	}
	if constant {
		if math.IsInf(first, 0) {
			return math.NaN(), math.NaN()
		}
		return 0, first
	}
	sumX += cX
	sumY += cY
	sumXY += cXY
	sumX2 += cX2
	covXY := sumXY - sumX*sumY/n
	varX := sumX2 - sumX*sumX/n
	slope = covXY / varX
	return slope, sumY/n - slope*sumX/n
}

func compareOverTime(floats []promql.FPoint, replaces func(cur, kept float64) bool) float64 {
	kept := floats[0].F
	for _, f := range floats {
		if replaces(f.F, kept) {
			kept = f.F
		}
	}
	return kept
}

// quantileOverTime is the engine's φ-quantile of the floats.
func quantileOverTime(floats []promql.FPoint, q float64) float64 {
	if math.IsNaN(q) {
		return math.NaN()
	}
	if q < 0 {
		return math.Inf(-1)
	}
	if q > 1 {
		return math.Inf(+1)
	}
	values := make(byValue, len(floats))
	for i, f := range floats {
		values[i] = f.F
	}
	sort.Sort(values)
	n := float64(len(values))
	rank := q * (n - 1)
	lowerIndex := math.Max(0, math.Floor(rank))
	upperIndex := math.Min(n-1, lowerIndex+1)
	weight := rank - math.Floor(rank)
	if weight == 0 {
		return values[int(lowerIndex)]
	}
	return values[int(lowerIndex)]*(1-weight) + values[int(upperIndex)]*weight
}

// byValue sorts as the engine sorts for a quantile, NaN first.
type byValue []float64

func (s byValue) Len() int      { return len(s) }
func (s byValue) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s byValue) Less(i, j int) bool {
	if math.IsNaN(s[i]) {
		return true
	}
	return s[i] < s[j]
}
