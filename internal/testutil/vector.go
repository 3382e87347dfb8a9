package testutil

import (
	"math"

	"github.com/prometheus/prometheus/promql"
)

// VectorDiff describes how got differs from want, sample by sample and
// in any order (NaN equals NaN), or is "" when they are the same.
func VectorDiff(want, got promql.Vector) string {
	if len(want) != len(got) {
		return "want " + want.String() + ", got " + got.String()
	}
	byLabels := map[string]promql.Sample{}
	for _, s := range want {
		byLabels[s.Metric.String()] = s
	}
	for _, g := range got {
		w, ok := byLabels[g.Metric.String()]
		switch {
		case !ok:
			return "unexpected " + g.String()
		case w.T != g.T,
			w.H == nil != (g.H == nil),
			w.H != nil && !w.H.Equals(g.H),
			w.H == nil && w.F != g.F && !(math.IsNaN(w.F) && math.IsNaN(g.F)):
			return "want " + w.String() + ", got " + g.String()
		}
	}
	return ""
}
