package promapi

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// responseReader reads one answer of the API as it arrives.
type responseReader struct {
	it *jsoniter.Iterator
	b  labels.ScratchBuilder
	// pts and hpts hold the float and histogram samples of the series
	// being read.
	pts  []promql.FPoint
	hpts []promql.HPoint
}

func newResponseReader(body io.Reader) *responseReader {
	return &responseReader{it: jsoniter.Parse(jsoniter.ConfigDefault, body, 32<<10), b: labels.NewScratchBuilder(8)}
}

// envelope is the top level of an answer, but for its data.
type envelope struct {
	status, errorType, errMsg string
	hasData                   bool
}

// envelope reads the answer's top level, and its data with decode.
func (r *responseReader) envelope(decode func(*responseReader) error) (envelope, error) {
	var env envelope
	var err error
	r.it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "status":
			env.status = it.ReadString()
		case "errorType":
			env.errorType = it.ReadString()
		case "error":
			env.errMsg = it.ReadString()
		case "data":
			if it.WhatIsNext() == jsoniter.NilValue {
				it.Skip()
				break
			}
			env.hasData = true
			err = decode(r)
		default:
			it.Skip()
		}
		return err == nil && it.Error == nil
	})
	if err != nil {
		return env, err
	}
	return env, r.it.Error
}

// vector reads data whose result is an instant vector or a scalar.
func (r *responseReader) vector() (promql.Vector, error) {
	var out promql.Vector
	typ, scalar, err := r.data(func(ls labels.Labels, pts []promql.FPoint, hpts []promql.HPoint) {
		switch {
		case len(pts) > 0:
			out = append(out, promql.Sample{Metric: ls, T: pts[0].T, F: pts[0].F})
		case len(hpts) > 0:
			out = append(out, promql.Sample{Metric: ls, T: hpts[0].T, H: hpts[0].H})
		}
	})
	switch {
	case err != nil:
		return nil, err
	case typ == "scalar":
		return promql.Vector{{Metric: labels.EmptyLabels(), T: scalar.T, F: scalar.F}}, nil
	case typ != "vector":
		return nil, fmt.Errorf("expected an instant vector, got %q", typ)
	}
	return out, nil
}

// matrix reads data whose result is a range vector.
func (r *responseReader) matrix() (promql.Matrix, error) {
	var out promql.Matrix
	typ, _, err := r.data(func(ls labels.Labels, pts []promql.FPoint, hpts []promql.HPoint) {
		if len(pts) > 0 || len(hpts) > 0 {
			out = append(out, promql.Series{Metric: ls, Floats: slices.Clone(pts), Histograms: slices.Clone(hpts)})
		}
	})
	switch {
	case err != nil:
		return nil, err
	case typ != "matrix":
		return nil, fmt.Errorf("expected a range vector, got %q", typ)
	}
	return out, nil
}

// data reads the data object: its result type, and its result's series,
// each passed to add with its float and histogram samples (in slices add
// may not keep), or a scalar's sample. The result type may come after the
// result.
func (r *responseReader) data(add func(labels.Labels, []promql.FPoint, []promql.HPoint)) (typ string, scalar promql.FPoint, err error) {
	var scalarValue string
	r.it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "resultType":
			typ = it.ReadString()
		case "result":
			if it.WhatIsNext() != jsoniter.ArrayValue {
				it.ReportError("reading the result", "not an array")
				break
			}
			i := 0
			isScalar := false
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				if i == 0 && it.WhatIsNext() != jsoniter.ObjectValue {
					isScalar = true
				}
				switch {
				case !isScalar:
					ls := r.series()
					if it.Error == nil {
						add(ls, r.pts, r.hpts)
					}
				case i == 0:
					scalar.T = readTime(it)
				case i == 1:
					// A string result has a value here that is not a
					// number; it is refused by its type, not parsed.
					scalarValue = it.ReadString()
				default:
					it.Skip()
				}
				i++
				return it.Error == nil
			})
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	if err := r.it.Error; err != nil {
		return "", scalar, err
	}
	if typ == "scalar" {
		if scalar.F, err = strconv.ParseFloat(scalarValue, 64); err != nil {
			return "", scalar, fmt.Errorf("reading a scalar's value: %w", err)
		}
	}
	return typ, scalar, nil
}

// series reads one element of a vector or a matrix: its labels, its
// float samples into r.pts and its histogram samples into r.hpts.
func (r *responseReader) series() labels.Labels {
	ls := labels.EmptyLabels()
	r.pts, r.hpts = r.pts[:0], r.hpts[:0]
	r.it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "metric":
			r.b.Reset()
			it.ReadObjectCB(func(it *jsoniter.Iterator, name string) bool {
				if v := it.ReadString(); v != "" {
					r.b.Add(name, v)
				}
				return it.Error == nil
			})
			r.b.Sort()
			ls = r.b.Labels()
			if name, dup := ls.HasDuplicateLabelNames(); dup && it.Error == nil {
				it.ReportError("reading a series' labels", fmt.Sprintf("label %q twice", name))
			}
		case "value":
			r.pts = readPoint(it, r.pts)
		case "values":
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				r.pts = readPoint(it, r.pts)
				return it.Error == nil
			})
		case "histogram":
			r.hpts = readHistogramPoint(it, r.hpts)
		case "histograms":
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				r.hpts = readHistogramPoint(it, r.hpts)
				return it.Error == nil
			})
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	return ls
}

// readPoint reads [time, "value"] and appends it to pts.
func readPoint(it *jsoniter.Iterator, pts []promql.FPoint) []promql.FPoint {
	var p promql.FPoint
	n := readTuple(it, func(i int) {
		switch i {
		case 0:
			p.T = readTime(it)
		case 1:
			p.F = readNumber(it, "a sample's value")
		default:
			it.Skip()
		}
	})
	if n != 2 && it.Error == nil {
		it.ReportError("reading a sample", "expected [time, value]")
	}
	return append(pts, p)
}

// readTuple reads an array whose elements differ by position: read reads
// (or skips) element i. It returns how many elements there were.
func readTuple(it *jsoniter.Iterator, read func(i int)) int {
	n := 0
	it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
		read(n)
		n++
		return it.Error == nil
	})
	return n
}

// readNumber reads a number written as a string, as the API writes
// sample values; what names it in an error.
func readNumber(it *jsoniter.Iterator, what string) float64 {
	s := it.ReadString()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && it.Error == nil {
		it.ReportError("reading "+what, fmt.Sprintf("%q is not a number", s))
	}
	return f
}

// readTime reads seconds since the epoch as milliseconds.
func readTime(it *jsoniter.Iterator) int64 {
	n := it.ReadNumber()
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		if it.Error == nil {
			it.ReportError("reading a sample's time", fmt.Sprintf("%q is not a number", n))
		}
		return 0
	}
	return int64(math.Round(f * 1000))
}
