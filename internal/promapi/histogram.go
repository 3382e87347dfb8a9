package promapi

import (
	"math"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/promql"
)

// The API writes a native histogram as its count, its sum and its
// non-empty buckets, each as [boundary rule, lower, upper, count], without
// its schema. A histogram with custom buckets (a classic histogram a
// Prometheus converted at scrape, convert_classic_histograms_to_nhcb) can
// be rebuilt from that exactly: its first bucket is [-Inf, upper], the
// others (lower, upper], each one's lower bound the previous one's upper.
// Where the answer leaves out empty buckets, one empty bucket up to the
// next bound stands for them, which changes no quantile. An exponential
// histogram cannot be told from that form for certain; one with a zero
// bucket or negative buckets (other boundary rules, or closed buckets
// from a finite lower bound) is left out, like any sample that is not a
// custom-buckets histogram.

// The boundary rules of a bucket [lower, upper] and (lower, upper].
const (
	openLeft = 0
	closed   = 3
)

// readHistogramPoint reads [time, histogram] and appends it to hpts when
// the histogram has custom buckets.
func readHistogramPoint(it *jsoniter.Iterator, hpts []promql.HPoint) []promql.HPoint {
	var (
		p  promql.HPoint
		ok bool
	)
	n := readTuple(it, func(i int) {
		switch i {
		case 0:
			p.T = readTime(it)
		case 1:
			p.H, ok = readHistogram(it)
		default:
			it.Skip()
		}
	})
	if n != 2 && it.Error == nil {
		it.ReportError("reading a histogram sample", "expected [time, histogram]")
	}
	if !ok {
		return hpts
	}
	return append(hpts, p)
}

// apiBucket is one bucket of a histogram as the API writes it.
type apiBucket struct {
	rule                int
	lower, upper, count float64
}

// readHistogram reads a histogram object; ok is false when it is not one
// with custom buckets.
func readHistogram(it *jsoniter.Iterator) (*histogram.FloatHistogram, bool) {
	var (
		count, sum float64
		buckets    []apiBucket
	)
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "count":
			count = readNumber(it, "a histogram's count")
		case "sum":
			sum = readNumber(it, "a histogram's sum")
		case "buckets":
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				buckets = append(buckets, readBucket(it))
				return it.Error == nil
			})
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	if it.Error != nil {
		return nil, false
	}
	return customBuckets(count, sum, buckets)
}

// readBucket reads [rule, "lower", "upper", "count"].
func readBucket(it *jsoniter.Iterator) apiBucket {
	var b apiBucket
	n := readTuple(it, func(i int) {
		switch i {
		case 0:
			b.rule = it.ReadInt()
		case 1:
			b.lower = readNumber(it, "a bucket's lower bound")
		case 2:
			b.upper = readNumber(it, "a bucket's upper bound")
		case 3:
			b.count = readNumber(it, "a bucket's count")
		default:
			it.Skip()
		}
	})
	if n != 4 && it.Error == nil {
		it.ReportError("reading a histogram bucket", "expected [boundary rule, lower, upper, count]")
	}
	return b
}

// customBuckets rebuilds a histogram with custom buckets from the buckets
// the API wrote, in order; ok is false when they are not the buckets of
// one.
func customBuckets(count, sum float64, buckets []apiBucket) (*histogram.FloatHistogram, bool) {
	bounds := []float64{}
	var counts []float64
	prev := math.Inf(-1)
	for _, b := range buckets {
		// NaN bounds and counts fail the comparisons too.
		first := b.rule == closed && math.IsInf(b.lower, -1)
		if (b.rule != openLeft && !first) || !(b.lower >= prev) || !(b.upper > b.lower) || !(b.count >= 0) {
			return nil, false
		}
		if b.lower > prev {
			bounds = append(bounds, b.lower)
			counts = append(counts, 0)
		}
		counts = append(counts, b.count)
		prev = b.upper
		if !math.IsInf(b.upper, 1) {
			bounds = append(bounds, b.upper)
		}
	}
	fh := &histogram.FloatHistogram{
		Schema:          histogram.CustomBucketsSchema,
		Count:           count,
		Sum:             sum,
		CustomValues:    bounds,
		PositiveBuckets: counts,
	}
	if len(counts) > 0 {
		fh.PositiveSpans = []histogram.Span{{Length: uint32(len(counts))}}
	}
	return fh, true
}
