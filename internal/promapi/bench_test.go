package promapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/jsonutil"
)

// bucketRates is the answer to a histogram's bucket rates over a fleet:
// 22 buckets of each of instances servers, as a remote cycle fetches
// them for its quantiles.
func bucketRates(instances int) string {
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	for i := range instances {
		for j := range 22 {
			if i+j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"metric":{"instance":"10.0.%d.%d:8000","le":"%g","model":"meta-llama/Llama-3.1-8B-Instruct-%d"},"value":[1796487155.237,"%g"]}`,
				i/250, i%250, 0.001*float64(int(1)<<j), i%10, float64(i*j)/7)
		}
	}
	b.WriteString(`]}}`)
	return b.String()
}

// nativeRates is the same answer from a Prometheus that keeps the
// histogram as a native one with custom buckets: one series per server,
// its buckets written as Prometheus writes them (empty ones left out).
func nativeRates(instances int) string {
	bounds := make([]float64, 21)
	for j := range bounds {
		bounds[j] = 0.001 * float64(int(1)<<j)
	}
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	stream := jsoniter.ConfigDefault.BorrowStream(nil)
	defer jsoniter.ConfigDefault.ReturnStream(stream)
	for i := range instances {
		h := &histogram.FloatHistogram{
			Schema:          histogram.CustomBucketsSchema,
			CustomValues:    bounds,
			PositiveSpans:   []histogram.Span{{Length: 22}},
			PositiveBuckets: make([]float64, 22),
		}
		for j := range h.PositiveBuckets {
			// Most of a server's requests fall in a few buckets.
			if j >= i%8 && j < i%8+10 {
				h.PositiveBuckets[j] = float64(i+j) / 7
				h.Count += h.PositiveBuckets[j]
				h.Sum += h.PositiveBuckets[j] * bounds[min(j, len(bounds)-1)]
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		stream.Reset(nil)
		jsonutil.MarshalHistogram(h, stream)
		fmt.Fprintf(&b, `{"metric":{"instance":"10.0.%d.%d:8000","model":"meta-llama/Llama-3.1-8B-Instruct-%d"},"histogram":[1796487155.237,%s]}`,
			i/250, i%250, i%10, stream.Buffer())
	}
	b.WriteString(`]}}`)
	return b.String()
}

// clientGolang is how the remote source asked before this package:
// client_golang's API, then each series' labels from its map.
type clientGolang struct{ api promv1.API }

func newClientGolang(tb testing.TB, url string) clientGolang {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		tb.Fatal(err)
	}
	return clientGolang{promv1.NewAPI(c)}
}

func (c clientGolang) query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	v, _, _, err := c.api.Query(ctx, expr, ts)
	if err != nil {
		return nil, err
	}
	var out promql.Vector
	for _, s := range v.(model.Vector) {
		b := labels.NewScratchBuilder(len(s.Metric))
		for k, v := range s.Metric {
			b.Add(string(k), string(v))
		}
		b.Sort()
		out = append(out, promql.Sample{Metric: b.Labels(), T: int64(s.Timestamp), F: float64(s.Value)})
	}
	return out, nil
}

func serveBody(tb testing.TB, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// The client reads a large answer as client_golang's does.
func TestQueryAgreesWithClientGolang(t *testing.T) {
	url := serveBody(t, bucketRates(50))
	c, err := NewClient(url, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1796487155, 0)
	got, err := c.Query(context.Background(), "x", ts, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, err := newClientGolang(t, url).query(context.Background(), "x", ts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50*22 || len(got) != len(want) {
		t.Fatalf("got %d samples, client_golang %d, want %d", len(got), len(want), 50*22)
	}
	for i := range got {
		if !labels.Equal(got[i].Metric, want[i].Metric) || got[i].T != want[i].T || got[i].F != want[i].F {
			t.Fatalf("sample %d: got %v, client_golang %v", i, got[i], want[i])
		}
	}
}

// BenchmarkQueryBucketRates reads the bucket rates of one histogram over
// 600 servers (13,200 series, 1.9 MB) from a local server: with
// client_golang's API, as the remote source did, and with this package;
// and with this package as 600 native histograms (native).
func BenchmarkQueryBucketRates(b *testing.B) {
	body, native := bucketRates(600), nativeRates(600)
	url, nativeURL := serveBody(b, body), serveBody(b, native)
	ts := time.Unix(1796487155, 0)
	ctx := context.Background()
	old := newClientGolang(b, url)
	c, err := NewClient(url, http.DefaultClient)
	if err != nil {
		b.Fatal(err)
	}
	nc, err := NewClient(nativeURL, http.DefaultClient)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		size    int
		samples int
		query   func() (promql.Vector, error)
	}{
		{"client_golang", len(body), 600 * 22, func() (promql.Vector, error) { return old.query(ctx, "x", ts) }},
		{"streaming", len(body), 600 * 22, func() (promql.Vector, error) { return c.Query(ctx, "x", ts, 0) }},
		{"native", len(native), 600, func() (promql.Vector, error) { return nc.Query(ctx, "x", ts, 0) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			for b.Loop() {
				v, err := bc.query()
				if err != nil || len(v) != bc.samples {
					b.Fatalf("%d samples, %v", len(v), err)
				}
			}
		})
	}
}
