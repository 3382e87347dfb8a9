package recommender

import (
	"errors"
	"math"
)

// MinFitPoints is the fewest history points a fit is attempted with.
const MinFitPoints = 5

// FullConfidencePoints is how many points give a fit full data weight in
// the confidence.
const FullConfidencePoints = 30

// Fit is an ordinary least-squares line ITL = Alpha + Beta·batch.
type Fit struct {
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
	// R2 is the coefficient of determination, 1 − SSres/SStot.
	R2 float64 `json:"r2"`
	N  int     `json:"n"`
	// MinBatch and MaxBatch bound the batch sizes observed.
	MinBatch float64 `json:"min_batch"`
	MaxBatch float64 `json:"max_batch"`
}

// Errors of FitITL.
var (
	ErrTooFewPoints = errors.New("too few history points")
	ErrFlatBatch    = errors.New("batch size did not vary in the history")
)

// FitITL fits ITL = α + β·running over points by least squares.
func FitITL(points []Point) (Fit, error) {
	var n, sx, sy float64
	f := Fit{MinBatch: math.Inf(1), MaxBatch: math.Inf(-1)}
	for _, p := range points {
		if math.IsNaN(p.Running) || math.IsNaN(p.ITL) || math.IsInf(p.Running, 0) || math.IsInf(p.ITL, 0) {
			continue
		}
		n++
		sx += p.Running
		sy += p.ITL
		f.MinBatch = math.Min(f.MinBatch, p.Running)
		f.MaxBatch = math.Max(f.MaxBatch, p.Running)
	}
	f.N = int(n)
	if f.N < MinFitPoints {
		return Fit{N: f.N}, ErrTooFewPoints
	}
	mx, my := sx/n, sy/n
	var sxx, sxy, syy float64
	for _, p := range points {
		if math.IsNaN(p.Running) || math.IsNaN(p.ITL) || math.IsInf(p.Running, 0) || math.IsInf(p.ITL, 0) {
			continue
		}
		dx, dy := p.Running-mx, p.ITL-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 {
		return Fit{N: f.N, MinBatch: f.MinBatch, MaxBatch: f.MaxBatch}, ErrFlatBatch
	}
	f.Beta = sxy / sxx
	f.Alpha = my - f.Beta*mx
	switch {
	case syy == 0:
		f.R2 = 1
	default:
		// SSres = SStot − β·Sxy for the least-squares line.
		f.R2 = math.Max(0, 1-(syy-f.Beta*sxy)/syy)
	}
	return f, nil
}

// Predict is α + β·batch.
func (f Fit) Predict(batch float64) float64 { return f.Alpha + f.Beta*batch }

// MaxBatchFor is B* = ⌊(target − α)/β⌋, the largest batch whose predicted
// ITL meets target; ok is false when β ≤ 0 (ITL does not grow with the
// batch, so the fit bounds nothing).
func (f Fit) MaxBatchFor(target float64) (b float64, ok bool) {
	if f.Beta <= 0 {
		return 0, false
	}
	return math.Floor((target - f.Alpha) / f.Beta), true
}
