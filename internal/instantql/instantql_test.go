package instantql

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
)

const lookback = 5 * time.Minute

var start = time.Unix(1_700_000_000, 0)

// agreeing are queries the package evaluates; each must give what the
// engine gives at every evaluation time.
var agreeing = []string{
	`c_total`,
	`g`,
	`gap`,
	`last_over_time(gap[2m])`,
	`count_over_time(gap[10m])`,
	`{__name__=~"g|g2"}`,
	`h`,
	`rate(c_total[1m])`,
	`increase(c_total[45s])`,
	`resets(c_total[2m])`,
	`rate(h[1m])`,
	`increase(h[1m])`,
	`resets(h[1m])`,
	`rate(mixed[1m])`,
	`resets(mixed[5m])`,
	`sum by (instance) (rate(c_total[1m]))`,
	`sum by (instance, model) (rate(h[1m]))`,
	`sum by (model) (rate(h[1m]))`,
	`sum(g)`,
	`sum by (model) (h)`,
	`sum by (model) ({__name__=~"g|h"})`,
	`avg by (model) (g)`,
	`max by (model) (g)`,
	`min by (model) (g)`,
	`max by (model) ({__name__=~"g|h"})`,
	`min by (instance) ({__name__=~"h|g"})`,
	`count by (model) ({__name__=~"g|h|c_total"})`,
	`group by (instance, model) ({__name__=~"g|g2"})`,
	`histogram_sum(rate(h[1m]))`,
	`histogram_count(rate(h[1m]))`,
	`histogram_avg(rate(h[1m]))`,
	`histogram_sum(g)`,
	`clamp_min(g, 0.5)`,
	`clamp_min((g), (2))`,
	`g > 0.5`,
	`0.5 < g`,
	`{__name__=~"g|g2"} >= 0.3`,
	`g * 2`,
	`2 - g`,
	`g > 1 / 30`,
	`(1 - 0.25) * g`,
	`g / (2 ^ 3 - 8)`,
	`-1 / 0 < g`,
	`c_total * (1 + 2 * 3) - (10 / 4)`,
	`g * (scalar(k{instance="10.0.0.4:8000"}) + 1)`,
	`g > 2 * scalar(g{instance="10.0.0.0:8000"})`,
	`g - scalar(k) ^ 2`,
	`g / (scalar(k{instance="10.0.0.4:8000"}) - 2)`,
	`g / 0`,
	`g / g2`,
	`g - on (instance, model) g2`,
	`g + ignoring (job) g2`,
	`g > on (instance, model) g2`,
	`sum by (instance) (rate(c_total[1m])) / (sum by (instance) (g) > 0)`,
	`sum by (instance, model) (g) or on (instance, model) sum by (instance, model) (g2)`,
	`g or g2`,
	`g and g2`,
	`g unless g2`,
	`g and on (instance) g2 > 0.5`,
	`g or {__name__=~"g2|c_total"}`,
	`max by (instance) (resets(c_total[1m])) or 0 * group by (instance) (g)`,
	`clamp_min(sum by (instance) (histogram_sum(rate(h[1m]))) / (sum by (instance) (histogram_count(rate(h[1m]))) > 0) - sum by (instance) (g), 0)`,
	`avg_over_time(g[2m])`,
	`sum_over_time(c_total[1m])`,
	`max_over_time(g[3m])`,
	`min_over_time(g[90s])`,
	`count_over_time(g2[1m])`,
	`last_over_time(g[1m])`,
	`last_over_time({__name__=~"g|g2"}[1m])`,
	`quantile_over_time(0.9, g[5m])`,
	`quantile_over_time(0.5, g[2m])`,
	`quantile_over_time(0, g[1m])`,
	`quantile_over_time(1.5, g[1m])`,
	`avg by (model) (avg_over_time(g[5m])) > on (model) 0.4 * max by (model) (max_over_time(g2[5m]))`,
	`count_over_time(h[1m])`,
	`g > on (model) group_left () 0.5 * avg by (model) (g2)`,
	`g - on (model) group_left () avg by (model) (g2)`,
	`g * on (instance) group_left (job) g2`,
	`g + ignoring (job) group_left (model) g2`,
	`{__name__=~"g|g2"} > on (model) group_left () avg by (model) (g)`,
	`g > scalar(max(g2))`,
	`g > scalar(g2)`,
	`scalar(sum(g)) - g`,
	`g > scalar(nothing)`,
	`g * scalar(max by (instance) (g2) > 0.9)`,
	`nothing`,
	`rate(nothing[1m]) or g`,
	`g and nothing`,
	`g unless nothing`,
	`g offset 1m`,
	`g offset 5m`,
	`rate(c_total[1m] offset 2m)`,
	`increase(h[1m] offset 30s)`,
	`max_over_time(g[2m] offset 1m)`,
	`g and on (instance, model) g2 offset 3m`,
	`deriv(g[2m])`,
	`deriv(c_total[5m])`,
	`deriv(g[90s] offset 2m)`,
	`deriv(k[2m])`,
	`deriv(mixed[5m])`,
	`predict_linear(g[3m], 0)`,
	`predict_linear(c_total[5m], 600)`,
	`predict_linear(g2[2m], -60)`,
	`predict_linear(k[2m], 60)`,
	`predict_linear(g[3m] offset 1m, 30)`,
	`stdvar_over_time(g[5m])`,
	`stddev_over_time(c_total[3m])`,
	`stdvar_over_time(k[1m])`,
	`g ^ 2`,
	`2 ^ g`,
	`g ^ g2`,
	`((0.9 - predict_linear(g[5m], 0)) / deriv(g[5m])) > 0 <= 3600`,
	`deriv(g[5m]) ^ 2 * 67500 * (count_over_time(g[5m]) - 2) > 9 * (stdvar_over_time(g[5m]) - deriv(g[5m]) ^ 2 * 67500)`,
	`round(g, 0.1)`,
	`round(c_total)`,
	`round(g2, 60)`,
	`round(g, 0)`,
	`round(h)`,
	`label_replace(g, "a", "$1", "model", "(.*)")`,
	`label_replace(rate(c_total[1m]), "model", "m-${1}x", "model", "(a)")`,
	`label_replace(label_replace(g, "bottleneck", "B1", "", ""), "severity", "info", "", "")`,
	`label_replace(g, "model", "", "model", "a")`,
	`label_replace(h, "x", "y", "", "")`,
	`label_replace({__name__=~"g|g2"}, "job", "$2", "instance", "(.*):(.*)")`,
	`max by (instance, model) (label_replace(label_replace(g, "model", "$1", "job", "(.+)"), "model", "$1", "nothing", "(.+)"))`,
}

// declined are queries the package does not compile.
var declined = []string{
	`g > (1 > bool 0)`,
	`g * (7 % 4)`,
	`g @ 100`,
	`rate(c_total[1m] @ 100)`,
	`rate({__name__=~"c_total|g"}[1m])`,
	`irate(c_total[1m])`,
	`histogram_quantile(0.9, rate(h[1m]))`,
	`sum without (instance) (g)`,
	`topk(2, g)`,
	`g * on (instance) group_right (job) g2`,
	`g > bool 0.5`,
	`{__name__=~"g|g2"} * 2`,
	`-g`,
	`1 + 2`,
	`rate(c_total[5m:1m])`,
	`deriv(g[5m:1m])`,
	`predict_linear(g[5m], scalar(g2))`,
	`label_replace(g, "a", "b", "c", "(")`,
	`label_replace(g, "__name__", "x", "", "")`,
	`label_replace({__name__=~"g|g2"}, "a", "b", "c", "d") + 1`,
	`round(g, scalar(g2))`,
	`clamp_min(g, scalar(g2))`,
	`g > scalar(vector(1))`,
	`abs(g)`,
	`max_over_time(g[5m:1m])`,
	`avg_over_time({__name__=~"g|g2"}[1m])`,
}

func TestAgreesWithTheEngine(t *testing.T) {
	db := fleet(t)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: lookback})
	ctx := context.Background()
	evaluated := 0
	for _, expr := range agreeing {
		t.Run(expr, func(t *testing.T) {
			q := compileString(t, expr)
			for at := start.Add(-time.Minute); at.Before(start.Add(13 * time.Minute)); at = at.Add(7 * time.Second) {
				want := engineAnswer(t, engine, db, expr, at)
				got, err := q.Eval(ctx, db, at)
				if errors.Is(err, ErrUnsupported) {
					continue
				}
				if err != nil {
					t.Fatalf("at %s: %v", at, err)
				}
				evaluated++
				compare(t, fmt.Sprintf("%s at %s", expr, at.Sub(start)), got, want)
			}
		})
	}
	t.Logf("%d direct evaluations", evaluated)
	if evaluated < len(agreeing)*100 {
		t.Errorf("only %d evaluations were direct, want at least %d", evaluated, len(agreeing)*100)
	}
}

// TestDeclinesWhatTheEngineFails checks that the evaluations the engine
// refuses are declined, not answered.
func TestDeclinesWhatTheEngineFails(t *testing.T) {
	db := fleet(t)
	at := start.Add(4 * time.Minute)
	for _, expr := range []string{
		`g2 + on (model) g`,               // several on the right
		`g + on (model) g2`,               // one on the right, several on the left
		`h * 2`,                           // a histogram
		`avg by (model) (h)`,              // a histogram mean
		`h > on (instance, model) g`,      // a histogram compared
		`max_over_time(h[1m])`,            // histograms over time
		`g * on (model) group_left () g2`, // several on the one side
		`g * on (model) group_left (instance) avg by (model) (g2)`, // results made the same
		`label_replace(g, "instance", "one", "", "")`,              // series made the same
	} {
		q := compileString(t, expr)
		if _, err := q.Eval(context.Background(), db, at); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", expr, err)
		}
	}
}

func TestCompileDeclines(t *testing.T) {
	for _, expr := range declined {
		e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if _, err := Compile(e, lookback); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", expr, err)
		}
	}
}

func compileString(t *testing.T, expr string) *Query {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	q, err := Compile(e, lookback)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return q
}

func engineAnswer(t *testing.T, engine *promql.Engine, db storage.Queryable, expr string, at time.Time) promql.Vector {
	t.Helper()
	q, err := engine.NewInstantQuery(context.Background(), db, nil, expr, at)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("the engine fails %s at %s: %v", expr, at, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	out := make(promql.Vector, len(v))
	for i, s := range v {
		out[i] = s
		if s.H != nil {
			out[i].H = s.H.Copy()
		}
	}
	return out
}

// compare fails t unless got and want hold the same samples, bit for
// bit, in any order.
func compare(t *testing.T, what string, got, want promql.Vector) {
	t.Helper()
	byLabels := func(a, b promql.Sample) int { return labels.Compare(a.Metric, b.Metric) }
	slices.SortFunc(got, byLabels)
	slices.SortFunc(want, byLabels)
	if len(got) != len(want) {
		t.Fatalf("%s: %d samples, want %d:\n%v\nwant\n%v", what, len(got), len(want), got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		same := labels.Equal(g.Metric, w.Metric) && g.T == w.T &&
			math.Float64bits(g.F) == math.Float64bits(w.F) &&
			(g.H == nil) == (w.H == nil) && (g.H == nil || g.H.Equals(w.H))
		if !same {
			t.Fatalf("%s: sample %d is %v, want %v", what, i, g, w)
		}
	}
}

// fleet writes ten minutes of samples of six instances of two models,
// scraped every 15 s with jitter: counters that reset, gauges that go
// stale, stop or pause, gauges that never change (one infinite), native
// histograms with custom and exponential buckets that reset, a series
// that changes from floats to histograms, and instances that appear and
// vanish.
func fleet(t *testing.T) storage.Storage {
	t.Helper()
	db := teststorage.New(t)
	app := db.Appender(context.Background())
	rng := rand.New(rand.NewPCG(7, 11))
	stale := math.Float64frombits(value.StaleNaN)
	for i := range 6 {
		base := []string{"instance", fmt.Sprintf("10.0.0.%d:8000", i), "job", "llm", "model", []string{"a", "b"}[i%2]}
		series := func(name string, more ...string) labels.Labels {
			return labels.FromStrings(append(append([]string{"__name__", name}, base...), more...)...)
		}
		var counter, gauge float64
		hist := &histogram.Histogram{Schema: histogram.CustomBucketsSchema, CustomValues: []float64{0.1, 0.5, 1, 5},
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 5}}, PositiveBuckets: make([]int64, 5)}
		if i%3 == 2 {
			hist = &histogram.Histogram{Schema: 1, PositiveSpans: []histogram.Span{{Offset: -2, Length: 4}}, PositiveBuckets: make([]int64, 4)}
		}
		counts := make([]int64, len(hist.PositiveBuckets))
		from, to := 0, 40
		switch i {
		case 3:
			from = 12 // appears late
		case 4:
			to = 22 // vanishes without a marker
		}
		for k := from; k < to; k++ {
			ts := start.Add(time.Duration(k)*15*time.Second + time.Duration(rng.IntN(3000))*time.Millisecond).UnixMilli()
			if i == 1 && k%9 == 4 {
				continue // a missed scrape
			}
			counter += float64(rng.IntN(40))
			if k%17 == 16 && i != 0 {
				counter = float64(rng.IntN(5)) // a reset
			}
			gauge = rng.Float64()
			if i == 5 && k == 30 {
				gauge = math.NaN()
			}
			h := hist.Copy()
			var sum float64
			var total uint64
			for b := range counts {
				counts[b] += int64(rng.IntN(4))
				if k%13 == 12 && i == 2 {
					counts[b] = 0 // a reset
				}
				total += uint64(counts[b])
				sum += float64(counts[b]) * 0.3
			}
			prevCount := int64(0)
			for b, c := range counts {
				h.PositiveBuckets[b] = c - prevCount
				prevCount = c
			}
			h.Count, h.Sum = total, sum
			must(t, append1(app, series("c_total"), ts, counter, nil))
			must(t, append1(app, series("g"), ts, gauge, nil))
			must(t, append1(app, series("k"), ts, []float64{1, 1, 1, math.Inf(1), 0.25, 1}[i], nil))
			if i == 0 && (k < 10 || k >= 35) {
				// A gap longer than the lookback, in one chunk.
				must(t, append1(app, series("gap"), ts, gauge, nil))
			}
			if k%5 != 0 {
				must(t, append1(app, series("g2"), ts, rng.Float64(), nil))
			}
			must(t, append1(app, series("h"), ts, 0, h))
			if k < 20 {
				must(t, append1(app, series("mixed"), ts, counter, nil))
			} else {
				must(t, append1(app, series("mixed"), ts, 0, h))
			}
			if i == 0 && k == 25 {
				for _, name := range []string{"g", "h", "c_total"} {
					must(t, append1(app, series(name), ts+1000, stale, nil))
				}
				k = 30 // and comes back later
			}
		}
	}
	must(t, app.Commit())
	return db
}

func append1(app storage.Appender, ls labels.Labels, ts int64, f float64, h *histogram.Histogram) error {
	var err error
	if h != nil {
		_, err = app.AppendHistogram(0, ls, ts, h, nil)
	} else {
		_, err = app.Append(0, ls, ts, f)
	}
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
