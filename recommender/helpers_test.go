package recommender

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var testNow = time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)

func sig(name, q string, v float64) signals.Value {
	return signals.Value{Name: name, Quantile: q, Value: v}
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

// checkGolden compares rep, its numbers rounded as normalize does, with
// testdata/<name>.json; -update rewrites the file instead.
func checkGolden(t *testing.T, name string, rep Report) {
	t.Helper()
	rep.Recommendations = normalize(rep.Recommendations)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./recommender -update to create it)", err)
	}
	if got := buf.Bytes(); !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		n := 0
		for n < len(gl) && n < len(wl) && gl[n] == wl[n] {
			n++
		}
		t.Errorf("report differs from %s (run go test ./recommender -run %s -update and review the diff); first at line %d:\ngot:  %s\nwant: %s",
			path, strings.Split(t.Name(), "/")[0], n+1, line(gl, n), line(wl, n))
	}
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of file)"
}

func newTestRecommender(t *testing.T, cfg config.RecommenderConfig) *Recommender {
	t.Helper()
	r, err := New(Options{Config: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
