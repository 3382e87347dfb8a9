package recommender

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestKVBytesPerToken(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape ModelShape
		dtype float64
		want  float64
	}{
		// 2 × 32 × 8 × 128 × 2 = 131072 B = 128 KiB (docs/recommendations.md, Formulas).
		{"Llama-3.1-8B bf16", ModelShape{Layers: 32, KVHeads: 8, HeadDim: 128, DTypeBytes: 2}, 2, 131072},
		// Same model, FP8 KV: 2 × 32 × 8 × 128 × 1 = 65536 B.
		{"Llama-3.1-8B fp8", ModelShape{Layers: 32, KVHeads: 8, HeadDim: 128, DTypeBytes: 2}, 1, 65536},
		// 2 × 80 × 8 × 128 × 2 = 327680 B = 320 KiB.
		{"Llama-3.1-70B bf16", ModelShape{Layers: 80, KVHeads: 8, HeadDim: 128, DTypeBytes: 2}, 2, 327680},
	} {
		if got := tc.shape.KVBytesPerToken(tc.dtype); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFitITL(t *testing.T) {
	pts := func(xy ...float64) []Point {
		var out []Point
		for i := 0; i+1 < len(xy); i += 2 {
			out = append(out, Point{Time: testNow.Add(time.Duration(i) * time.Second), Running: xy[i], ITL: xy[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []Point
		want Fit
		err  error
	}{
		{
			// Exact line ITL = 0.01 + 0.0003·R: R² = 1.
			name: "exact line",
			in:   pts(10, 0.013, 20, 0.016, 30, 0.019, 40, 0.022, 50, 0.025),
			want: Fit{Alpha: 0.01, Beta: 0.0003, R2: 1, N: 5, MinBatch: 10, MaxBatch: 50},
		},
		{
			// x̄ = 3, ȳ = 4; Sxx = 4+1+0+1+4 = 10;
			// Sxy = (−2)(−2)+(−1)(0)+0(1)+1(0)+2(1) = 6; Syy = 4+0+1+0+1 = 6.
			// β = 6/10 = 0.6; α = 4 − 0.6·3 = 2.2; R² = β·Sxy/Syy = 3.6/6 = 0.6.
			name: "noisy",
			in:   pts(1, 2, 2, 4, 3, 5, 4, 4, 5, 5),
			want: Fit{Alpha: 2.2, Beta: 0.6, R2: 0.6, N: 5, MinBatch: 1, MaxBatch: 5},
		},
		{name: "too few", in: pts(1, 2, 2, 3), want: Fit{N: 2}, err: ErrTooFewPoints},
		{name: "flat batch", in: pts(4, 1, 4, 2, 4, 3, 4, 4, 4, 5), want: Fit{N: 5, MinBatch: 4, MaxBatch: 4}, err: ErrFlatBatch},
		{name: "NaN skipped", in: append(pts(10, 0.013, 20, 0.016, 30, 0.019, 40, 0.022, 50, 0.025), Point{Running: math.NaN(), ITL: 1}), want: Fit{Alpha: 0.01, Beta: 0.0003, R2: 1, N: 5, MinBatch: 10, MaxBatch: 50}},
	} {
		got, err := FitITL(tc.in)
		if !errors.Is(err, tc.err) {
			t.Fatalf("%s: error %v, want %v", tc.name, err, tc.err)
		}
		got.Alpha, got.Beta, got.R2 = approx(got.Alpha), approx(got.Beta), approx(got.R2)
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// B* = ⌊(0.05 − 0.01)/0.0003⌋ = ⌊133.3⌋ = 133.
	f := Fit{Alpha: 0.01, Beta: 0.0003}
	if b, ok := f.MaxBatchFor(0.05); !ok || b != 133 {
		t.Errorf("B*: got %v %v, want 133", b, ok)
	}
	if _, ok := (Fit{Alpha: 0.01, Beta: -0.001}).MaxBatchFor(0.05); ok {
		t.Error("B* with β < 0 must not be defined")
	}
}

func TestErlangC(t *testing.T) {
	// M/M/2 with a = 1 Erlang: B(1) = 1/(1+1) = 0.5; B(2) = 0.5/(2+0.5) = 0.2;
	// ρ = 0.5; C = 0.2 / (1 − 0.5·0.8) = 1/3.
	if got := approx(ErlangC(2, 1)); got != approx(1.0/3) {
		t.Errorf("C(2, 1) = %v, want 1/3", got)
	}
	// M/M/1: C = ρ.
	if got := approx(ErlangC(1, 0.7)); got != 0.7 {
		t.Errorf("C(1, 0.7) = %v, want 0.7", got)
	}
	if ErlangC(2, 2) != 1 || ErlangC(3, 0) != 0 {
		t.Error("edge cases of ErlangC")
	}
	q := Queue{Servers: 2, Lambda: 1, Service: 1}
	// Wq = C/(cμ − λ) = (1/3)/(2 − 1) = 1/3; Lq = λ·Wq = 1/3.
	if got := approx(q.MeanWait()); got != approx(1.0/3) {
		t.Errorf("Wq = %v, want 1/3", got)
	}
	if got := approx(q.MeanWaiting()); got != approx(1.0/3) {
		t.Errorf("Lq = %v, want 1/3", got)
	}
	// p95: ln((1/3)/0.05) / 1 = ln(20/3).
	if got := approx(q.WaitQuantile(0.95)); got != approx(math.Log(20.0/3)) {
		t.Errorf("p95 wait = %v, want ln(20/3)", got)
	}
	// p50: C = 1/3 < 0.5 of arrivals wait, so the median wait is 0.
	if q.WaitQuantile(0.5) != 0 {
		t.Error("median wait must be 0 when fewer than half wait")
	}
	if !math.IsInf((Queue{Servers: 1, Lambda: 2, Service: 1}).MeanWait(), 1) {
		t.Error("unstable queue must wait forever")
	}
}
