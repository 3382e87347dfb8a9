package recommender

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/collector"
)

var testNow = time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)

func sig(name, q string, v float64) collector.SignalValue {
	return collector.SignalValue{Name: name, Quantile: q, Value: v}
}

func settings(source string, kv ...string) collector.Settings {
	s := collector.Settings{}
	for i := 0; i+1 < len(kv); i += 2 {
		s[kv[i]] = collector.Setting{Value: kv[i+1], Source: source}
	}
	return s
}

// approx rounds every float of v to 9 significant digits so hand-computed
// expectations compare equal to computed ones.
func approx(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	d := math.Pow(10, 9-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*d) / d
}

func normalize(recs []Recommendation) []Recommendation {
	out := make([]Recommendation, len(recs))
	for i, r := range recs {
		r.Confidence = approx(r.Confidence)
		fs := make([]Factor, len(r.Factors))
		for j, f := range r.Factors {
			f.Value = approx(f.Value)
			fs[j] = f
		}
		r.Factors = fs
		es := make([]Effect, len(r.Effects))
		for j, e := range r.Effects {
			if e.Current != nil {
				e.Current = ptr(approx(*e.Current))
			}
			if e.Estimate != nil {
				e.Estimate = ptr(approx(*e.Estimate))
			}
			es[j] = e
		}
		r.Effects = es
		out[i] = r
	}
	return out
}

func assertRecs(t *testing.T, got, want []Recommendation) {
	t.Helper()
	g, w := normalize(got), normalize(want)
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.MarshalIndent(g, "", "  ")
		wj, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("recommendations differ\ngot:\n%s\nwant:\n%s", gj, wj)
	}
}

func newTestRecommender(t *testing.T, cfg Config) *Recommender {
	t.Helper()
	r, err := New(Options{Config: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
