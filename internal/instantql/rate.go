package instantql

import (
	"errors"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/promql"
)

// extrapolatedRate is the engine's rate (isRate) or increase of one
// series' samples in (rangeStart, rangeEnd], for selectors without
// modifiers and without start timestamps. It returns false where the
// engine gives the series no value.
func extrapolatedRate(floats []promql.FPoint, hists []promql.HPoint, rangeStart, rangeEnd int64, rng time.Duration, isRate bool) (float64, *histogram.FloatHistogram, bool, error) {
	var (
		resultFloat        float64
		resultHistogram    *histogram.FloatHistogram
		firstT, lastT      int64
		numSamplesMinusOne int
	)
	switch {
	case len(hists) > 0 && len(floats) > 0:
		return 0, nil, false, nil
	case len(hists) > 0:
		numSamplesMinusOne = len(hists) - 1
		firstT, lastT = hists[0].T, hists[numSamplesMinusOne].T
		if len(hists) > 1 {
			var err error
			if resultHistogram, err = histogramRate(hists); err != nil || resultHistogram == nil {
				return 0, nil, false, err
			}
		}
	case len(floats) > 0:
		numSamplesMinusOne = len(floats) - 1
		firstT, lastT = floats[0].T, floats[numSamplesMinusOne].T
		resultFloat = floats[numSamplesMinusOne].F - floats[0].F
		for i, curr := range floats[1:] {
			if prev := floats[i]; curr.F < prev.F {
				resultFloat += prev.F
			}
		}
	default:
		return 0, nil, false, nil
	}
	if numSamplesMinusOne == 0 {
		return 0, nil, false, nil
	}

	durationToStart := float64(firstT-rangeStart) / 1000
	durationToEnd := float64(rangeEnd-lastT) / 1000
	sampledInterval := float64(lastT-firstT) / 1000
	averageDurationBetweenSamples := sampledInterval / float64(numSamplesMinusOne)
	extrapolationThreshold := averageDurationBetweenSamples * 1.1

	if durationToStart >= extrapolationThreshold {
		durationToStart = averageDurationBetweenSamples / 2
	}
	// A counter does not go below zero: extrapolate back no further than
	// where it would reach it.
	durationToZero := durationToStart
	switch {
	case resultFloat > 0 && len(floats) > 0 && floats[0].F >= 0:
		durationToZero = sampledInterval * (floats[0].F / resultFloat)
	case resultHistogram != nil && resultHistogram.Count > 0 && len(hists) > 0 && hists[0].H.Count >= 0:
		durationToZero = sampledInterval * (hists[0].H.Count / resultHistogram.Count)
	}
	if durationToZero < durationToStart {
		durationToStart = durationToZero
	}
	if durationToEnd >= extrapolationThreshold {
		durationToEnd = averageDurationBetweenSamples / 2
	}

	factor := 1.0
	if sampledInterval != 0 {
		factor = (sampledInterval + durationToStart + durationToEnd) / sampledInterval
	}
	if isRate {
		factor /= rng.Seconds()
	}
	if resultHistogram == nil {
		return resultFloat * factor, nil, true, nil
	}
	resultHistogram.Mul(factor)
	return 0, resultHistogram, true, nil
}

// histogramRate is the engine's increase of a counter histogram over
// points, before extrapolation; nil where the engine gives none (bucket
// layouts it cannot combine). An invalid bucket layout, on which the
// engine fails the query, is left to it.
func histogramRate(points []promql.HPoint) (*histogram.FloatHistogram, error) {
	prev := points[0].H
	last := points[len(points)-1].H
	usingCustomBuckets := prev.UsesCustomBuckets()
	// A reset between the first two samples: the first is not looked at.
	if second := points[1].H; second.DetectReset(prev) {
		prev = &histogram.FloatHistogram{Schema: second.Schema, CustomValues: second.CustomValues}
		usingCustomBuckets = second.UsesCustomBuckets()
	}
	if last.UsesCustomBuckets() != usingCustomBuckets {
		return nil, nil
	}
	minSchema := min(last.Schema, prev.Schema)
	for _, p := range points[1 : len(points)-1] {
		minSchema = min(minSchema, p.H.Schema)
		if p.H.UsesCustomBuckets() != usingCustomBuckets {
			return nil, nil
		}
	}
	h, err := last.CopyToSchema(minSchema)
	if err != nil {
		return nil, unsupported("histogram layout: %v", err)
	}
	combine := func(op func(*histogram.FloatHistogram) (*histogram.FloatHistogram, bool, bool, error), other *histogram.FloatHistogram) (bool, error) {
		_, _, _, err := op(other)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, histogram.ErrHistogramsIncompatibleSchema):
			return false, nil
		default:
			return false, unsupported("histogram layout: %v", err)
		}
	}
	if ok, err := combine(h.Sub, prev); !ok {
		return nil, err
	}
	for _, p := range points[1:] {
		if p.H.DetectReset(prev) {
			if ok, err := combine(h.Add, prev); !ok {
				return nil, err
			}
		}
		prev = p.H
	}
	h.CounterResetHint = histogram.GaugeType
	return h.Compact(0), nil
}

// resets is the engine's resets of one series' samples, and false where
// it gives none.
func resets(floats []promql.FPoint, hists []promql.HPoint) (float64, bool) {
	if len(floats) == 0 && len(hists) == 0 {
		return 0, false
	}
	var (
		n          int
		prev, curr promql.Sample
		i, j       int
	)
	for k := 0; i < len(floats) || j < len(hists); k++ {
		switch {
		case j >= len(hists) || i < len(floats) && floats[i].T < hists[j].T:
			curr = promql.Sample{T: floats[i].T, F: floats[i].F}
			i++
		default:
			curr = promql.Sample{T: hists[j].T, H: hists[j].H}
			j++
		}
		if k > 0 {
			switch {
			case prev.H == nil && curr.H == nil:
				if curr.F < prev.F {
					n++
				}
			case prev.H == nil || curr.H == nil:
				n++
			case curr.H.DetectReset(prev.H):
				n++
			}
		}
		prev = curr
	}
	return float64(n), true
}
