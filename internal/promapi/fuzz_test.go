package promapi

import (
	"bytes"
	"testing"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser/posrange"
)

// FuzzAnswer reads any bytes as an answer, as a vector and as a matrix:
// never a panic, and a vector read without error has valid label sets and
// valid histograms, whose quantiles can be taken.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1.5,"NaN"]}]}}`,
		`{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]},{"metric":{},"histograms":[[1,{}]]}]}}`,
		`{"status":"error","errorType":"bad_data","error":"x"}`,
		`{"data":null}`,
		bucketRates(2),
		nativeRates(2),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v promql.Vector
		_, err := newResponseReader(bytes.NewReader(body)).envelope(func(r *responseReader) error {
			var err error
			v, err = r.vector()
			return err
		})
		for _, s := range v {
			if name, dup := s.Metric.HasDuplicateLabelNames(); err == nil && dup {
				t.Errorf("label %q twice in %v", name, s.Metric)
			}
			if s.H == nil {
				continue
			}
			if verr := s.H.Validate(); verr != nil {
				t.Errorf("histogram %v read from %s: %v", s.H, body, verr)
			}
			promql.HistogramQuantile(0.9, s.H, "", posrange.PositionRange{})
		}
		_, _ = newResponseReader(bytes.NewReader(body)).envelope(func(r *responseReader) error {
			_, err := r.matrix()
			return err
		})
	})
}
