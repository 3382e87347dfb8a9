package promapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/util/jsonutil"
)

// TestCustomBucketHistograms writes histograms with custom buckets as
// Prometheus's API writes them, which leaves out empty buckets, reads them
// back, and compares their quantiles, count and sum with the originals'.
func TestCustomBucketHistograms(t *testing.T) {
	bounds := []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	nhcb := func(counts ...float64) *histogram.FloatHistogram {
		h := &histogram.FloatHistogram{
			Schema:          histogram.CustomBucketsSchema,
			CustomValues:    bounds,
			PositiveSpans:   []histogram.Span{{Length: uint32(len(counts))}},
			PositiveBuckets: counts,
		}
		for i, c := range counts {
			h.Count += c
			h.Sum += c * bounds[min(i, len(bounds)-1)]
		}
		return h
	}
	for _, tc := range []struct {
		name string
		h    *histogram.FloatHistogram
	}{
		{"every bucket filled", nhcb(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)},
		{"empty buckets first", nhcb(0, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0)},
		{"empty buckets inside", nhcb(1, 0, 0, 4, 0, 6, 0, 0, 0.5, 0, 0)},
		{"only the +Inf bucket", nhcb(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3)},
		{"fewer buckets than bounds", nhcb(0, 2.5, 0.25)},
		{"rates below one", nhcb(0.0166, 0.0333, 0, 0, 0.0166, 0, 0, 0, 0, 0, 0)},
		{"empty", nhcb()},
		{"two spans", &histogram.FloatHistogram{
			Schema: histogram.CustomBucketsSchema, CustomValues: bounds, Count: 6, Sum: 9,
			PositiveSpans:   []histogram.Span{{Offset: 2, Length: 2}, {Offset: 3, Length: 1}},
			PositiveBuckets: []float64{1, 2, 3},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := jsoniter.ConfigDefault.BorrowStream(nil)
			defer jsoniter.ConfigDefault.ReturnStream(stream)
			jsonutil.MarshalHistogram(tc.h, stream)
			body := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a:1"},"histogram":[1700000000,` + string(stream.Buffer()) + `]}]}}`
			c, _ := serve(t, http.StatusOK, body)
			got, err := c.Query(context.Background(), "x", time.Unix(1700000000, 0), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].H == nil {
				t.Fatalf("got %v from %s, want one histogram", got, body)
			}
			h := got[0].H
			if h.Count != tc.h.Count || h.Sum != tc.h.Sum {
				t.Errorf("count and sum %v and %v, want %v and %v", h.Count, h.Sum, tc.h.Count, tc.h.Sum)
			}
			if err := h.Validate(); err != nil {
				t.Errorf("read %v from %s: %v", h, body, err)
			}
			var diffs []string
			for _, q := range []float64{0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1} {
				w, _ := promql.HistogramQuantile(q, tc.h, "", posrange.PositionRange{})
				g, _ := promql.HistogramQuantile(q, h, "", posrange.PositionRange{})
				if !sameFloat(g, w) {
					diffs = append(diffs, fmt.Sprintf("quantile %v: %v, want %v", q, g, w))
				}
			}
			if len(diffs) > 0 {
				t.Errorf("read %v from %s:\n%s", h, body, strings.Join(diffs, "\n"))
			}
		})
	}
}
