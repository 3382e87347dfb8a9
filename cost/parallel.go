package cost

import (
	"slices"
	"strconv"

	"github.com/optiinfra/perfagent/recommender"
)

// GPUScale is the factor by which a flag change multiplies the GPUs an
// instance holds: proposed / current for a tensor-parallel setting (t
// shards hold t GPUs), 1 for any other change or an unreadable value.
func GPUScale(a recommender.Action) float64 {
	if a.Kind != recommender.KindFlag || !slices.Contains(tpSettings, a.Setting) {
		return 1
	}
	cur, err1 := strconv.ParseFloat(a.Current, 64)
	next, err2 := strconv.ParseFloat(a.Proposed, 64)
	if err1 != nil || err2 != nil || cur <= 0 || next <= 0 {
		return 1
	}
	return next / cur
}
