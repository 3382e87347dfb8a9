package collector

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// A Prometheus that converts classic histograms at scrape
// (convert_classic_histograms_to_nhcb, Prometheus 3) keeps each as one
// native histogram with custom buckets, named after its family, and none
// of the _bucket, _sum and _count series the profiles read. So at the
// start of each collection the remote source is asked which of the
// profiles' histogram families it holds under the family's own name (one
// query, nativeFamiliesQuery). When it holds any, every query that reads a
// histogram is sent in the native form the embedded source uses
// (native.go): _sum and _count become histogram_sum and histogram_count of
// the native series, each `or` the classic series, and a query that reads
// buckets is sent `or` its classic form, so that a fleet whose histograms
// are native on some instances and classic on others is answered whole.
// Where both exist for one instance, the native answer wins (`or` keeps
// its left side). When the source holds none, the queries go as written:
// a Prometheus 2 or a VictoriaMetrics, which knows no histogram_count,
// sees no difference but the one query.
//
// Reading native histograms is also cheaper for the source: the bucket
// rates of one vLLM histogram across 600 servers are 13,200 classic
// series to answer, and 600 native ones.

// histogramFamilies lists, sorted, the families of the classic histogram
// series (named X_bucket, X_sum or X_count) that the profiles' rules
// read.
func histogramFamilies(profiles []*compiledProfile) []string {
	var out []string
	for _, p := range profiles {
		for _, r := range p.rules {
			parser.Inspect(r.Query(), func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					if family, suffix := splitHistogramName(vs.Name); suffix != "" {
						out = append(out, family)
					}
				}
				return nil
			})
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// nativeFamiliesQuery asks which of families have series of their own
// name: group by (__name__) ({__name__=~"A|B|…"}).
func nativeFamiliesQuery(families []string) (string, error) {
	quoted := make([]string, len(families))
	for i, f := range families {
		quoted[i] = regexp.QuoteMeta(f)
	}
	m, err := labels.NewMatcher(labels.MatchRegexp, model.MetricNameLabel, strings.Join(quoted, "|"))
	if err != nil {
		return "", fmt.Errorf("matching the histogram families: %w", err)
	}
	e := &parser.AggregateExpr{
		Op:       parser.GROUP,
		Grouping: []string{model.MetricNameLabel},
		Expr:     &parser.VectorSelector{LabelMatchers: []*labels.Matcher{m}},
	}
	return e.String(), nil
}

// hasNativeHistograms asks src, with query, whether it holds any of the
// profiles' histogram families as native histograms at ts.
func hasNativeHistograms(ctx context.Context, query func(context.Context, string, time.Time) (promql.Vector, error), profiles []*compiledProfile, ts time.Time) (bool, error) {
	families := histogramFamilies(profiles)
	if len(families) == 0 {
		return false, nil
	}
	expr, err := nativeFamiliesQuery(families)
	if err != nil {
		return false, err
	}
	v, err := query(ctx, expr, ts)
	if err != nil {
		return false, fmt.Errorf("asking which histograms are native: %w", err)
	}
	return len(v) > 0, nil
}

// nativeOrClassicQueries remembers the form each query is sent in to a
// source that holds native histograms: the profiles send the same few
// dozen every cycle.
type nativeOrClassicQueries struct{ rewriteCache }

// rewrite returns expr as sent to a source that holds native histograms
// (nativeOrClassic), or expr itself when it reads no histogram series or
// cannot be read from native histograms.
func (q *nativeOrClassicQueries) rewrite(expr string) string {
	return q.get(expr, nativeOrClassic)
}

// errNoHistograms says an expression reads no histogram series.
var errNoHistograms = errors.New("reads no histogram series")

// nativeOrClassic rewrites e, in place, for a source that holds native
// histograms: into its native form, `or` its classic form when it reads
// buckets.
func nativeOrClassic(e parser.Expr) (parser.Expr, error) {
	buckets, histograms := false, false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			_, suffix := splitHistogramName(vs.Name)
			buckets = buckets || suffix == "_bucket"
			histograms = histograms || suffix != ""
		}
		return nil
	})
	if !histograms {
		return nil, errNoHistograms
	}
	if !buckets {
		return toNativeHistograms(e)
	}
	// toNativeHistograms rewrites in place: the classic side is a copy.
	classic, err := NewParser().ParseExpr(e.String())
	if err != nil {
		return nil, err
	}
	native, err := toNativeHistograms(e)
	if err != nil {
		return nil, err
	}
	return orOriginal(native, classic), nil
}
