package collector

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/internal/testutil"
)

func TestSharedSubexpressionsRewrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		queries []string
		query   string
		want    string
	}{
		{
			name:    "repeated in one query",
			queries: []string{"sum(rate(a[1m])) / count(rate(a[1m]))"},
			query:   "sum(rate(a[1m])) / count(rate(a[1m]))",
			want:    "sum(__perfagent_shared_0) / count(__perfagent_shared_0)",
		},
		{
			name:    "a query is computed, not read",
			queries: []string{"sum by (i) (rate(a[1m]))", "sum by (i) (rate(a[1m])) / 2"},
			query:   "sum by (i) (rate(a[1m]))",
			want:    "sum by (i) (rate(a[1m]))",
		},
		{
			name:    "another query reads it",
			queries: []string{"sum by (i) (rate(a[1m]))", "sum by (i) (rate(a[1m])) / 2"},
			query:   "sum by (i) (rate(a[1m])) / 2",
			want:    "__perfagent_shared_0 / 2",
		},
		{
			name:    "the largest repeated terms",
			queries: []string{"(sum(rate(a[1m])) - sum(rate(b[1m]))) / sum(rate(a[1m]))", "sum(rate(a[1m])) - sum(rate(b[1m]))"},
			query:   "(sum(rate(a[1m])) - sum(rate(b[1m]))) / sum(rate(a[1m]))",
			want:    "(__perfagent_shared_2) / __perfagent_shared_0",
		},
		{
			name:    "a term repeated only inside the query read",
			queries: []string{"(sum(rate(a[1m])) - sum(rate(b[1m]))) / sum(rate(a[1m]))", "sum(rate(a[1m])) - sum(rate(b[1m]))"},
			query:   "sum(rate(a[1m])) - sum(rate(b[1m]))",
			want:    "__perfagent_shared_0 - sum(rate(b[1m]))",
		},
		{
			name:    "inside a subquery",
			queries: []string{"max_over_time(rate(a[1m])[5m:1m])", "rate(a[1m]) > 0"},
			query:   "max_over_time(rate(a[1m])[5m:1m])",
			want:    "max_over_time(rate(a[1m])[5m:1m])",
		},
		{
			name:    "the argument of absent",
			queries: []string{"absent(rate(a{job=\"x\"}[1m])) or rate(a{job=\"x\"}[1m])"},
			query:   "absent(rate(a{job=\"x\"}[1m])) or rate(a{job=\"x\"}[1m])",
			want:    "absent(rate(a{job=\"x\"}[1m])) or rate(a{job=\"x\"}[1m])",
		},
		{
			name:    "under histogram_sum and histogram_count",
			queries: []string{"histogram_sum(rate(h[1m])) / histogram_count(rate(h[1m]))"},
			query:   "histogram_sum(rate(h[1m])) / histogram_count(rate(h[1m]))",
			want:    "histogram_sum(rate(h[1m])) / histogram_count(rate(h[1m]))",
		},
		{
			name:    "selectors read no range",
			queries: []string{"a / a", "a > 0"},
			query:   "a / a",
			want:    "a / a",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := newSharedSubexpressions(tc.queries).rewrite(tc.query)
			if got.expr != tc.want {
				t.Errorf("rewrite(%q) = %q, want %q", tc.query, got.expr, tc.want)
			}
			for sub, name := range got.reads {
				if _, err := NewParser().ParseExpr(sub); err != nil {
					t.Errorf("%s reads %q, which does not parse: %v", name, sub, err)
				}
			}
		})
	}
}

// TestSharedSubexpressionsAnswerAsWritten evaluates every query of an
// embedded cycle over the fixtures both ways: as written, and reading
// the results of the subexpressions the cycle repeats, each computed
// once.
func TestSharedSubexpressionsAnswerAsWritten(t *testing.T) {
	src, profs := nativeFleet(t, 2*len(fixtureTemplates(t)))
	c := New(Options{Metrics: testMetrics()})
	if err := c.ApplyConfig(config.Default(), src, profs); err != nil {
		t.Fatal(err)
	}
	queries := evaluationQueries(c.profiles, planOf(src), "")
	for i, q := range queries {
		queries[i] = src.stored(q)
	}
	var (
		mtx       sync.Mutex
		evaluated = map[string]int{}
	)
	counted := func(expr string) {
		mtx.Lock()
		defer mtx.Unlock()
		evaluated[expr]++
	}
	cache := src.store.NewReadCache()
	shared := &sharedResults{
		plan: newSharedSubexpressions(queries),
		eval: func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
			counted(expr)
			return cache.Query(ctx, expr, ts)
		},
		evalReading: func(ctx context.Context, expr string, ts time.Time, computed map[string]promql.Vector) (promql.Vector, error) {
			counted(expr)
			return cache.QueryComputed(ctx, expr, ts, computed)
		},
	}
	ctx, ts := context.Background(), t0.Add(45*time.Second)
	rewritten, compared := 0, 0
	for _, q := range queries {
		if len(shared.plan.rewrite(q).reads) > 0 {
			rewritten++
		}
		got, err := shared.query(ctx, q, ts)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		want, err := src.store.Query(ctx, q, ts)
		if err != nil {
			t.Fatal(err)
		}
		compared += len(want)
		if msg := testutil.VectorDiff(want, got); msg != "" {
			t.Errorf("%s: %s", q, msg)
		}
	}
	if rewritten < 10 || compared < 300 {
		t.Errorf("%d queries read shared results, %d samples compared; the built-in profiles over the fixtures should give more", rewritten, compared)
	}
	for expr, n := range evaluated {
		if n > 1 {
			t.Errorf("%s evaluated %d times", expr, n)
		}
	}
	t.Logf("%d of %d queries read %d shared results; %d samples compared", rewritten, len(queries), shared.results.Len(), compared)
}
