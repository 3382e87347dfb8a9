package rules

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestShortCircuit checks that a chain of `and` and `unless` whose
// leftmost operand is empty is answered empty with only that operand
// asked, and that every other expression gets the engine's answer.
func TestShortCircuit(t *testing.T) {
	s := openStore(t, t.TempDir())
	appendAt(t, s, t0,
		point{signal("llm_kv_cache_usage_ratio", "a:8000", "vllm", "m"), 0.95},
		point{signal("llm_kv_cache_usage_ratio", "b:8000", "vllm", "m"), 0.40},
		point{signal("llm_requests_waiting", "a:8000", "vllm", "m"), 3},
		point{signal("llm_requests_waiting", "b:8000", "vllm", "m"), 0},
	)
	const (
		full  = `llm_kv_cache_usage_ratio >= 0.9`
		empty = `llm_kv_cache_usage_ratio > 1`
	)
	tests := []struct {
		name, expr string
		// asked are the queries sent to the engine, in order; nil
		// for the expression alone.
		asked []string
	}{
		{"and, left side empty", empty + ` and on (instance) llm_requests_waiting > 0`, []string{empty}},
		{"unless, left side empty", empty + ` unless on (instance) llm_requests_waiting > 0`, []string{empty}},
		{"chain inside labels, left side empty",
			`label_replace(label_replace((` + empty + ` and llm_requests_waiting > 0) unless on (model) (max by (model) (llm_requests_waiting) > 5), "severity", "info", "", ""), "category", "memory", "", "")`,
			[]string{empty}},
		{"and, left side not empty", full + ` and on (instance) llm_requests_waiting > 0`, []string{full, full + ` and on (instance) llm_requests_waiting > 0`}},
		{"unless, left side not empty", full + ` unless on (instance) llm_requests_waiting > 5`, []string{full, full + ` unless on (instance) llm_requests_waiting > 5`}},
		{"keywords in capitals", empty + ` AND llm_requests_waiting > 0 UNLESS llm_requests_waiting > 5`, []string{empty}},
		{"or is not a chain", empty + ` or llm_requests_waiting > 0`, nil},
		{"a chain on the right is not the left side", `llm_requests_waiting > 0 or (` + empty + ` and llm_requests_waiting)`, nil},
		{"no operator", `llm_requests_waiting`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var asked []string
			engine := s.QueryFunc()
			qf := shortCircuit(func(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
				asked = append(asked, q)
				return engine(ctx, q, ts)
			})
			want, err := engine(context.Background(), tc.expr, t0)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second time from the expression's cached form
				asked = nil
				got, err := qf(context.Background(), tc.expr, t0)
				if err != nil {
					t.Fatal(err)
				}
				if !sameVector(got, want) {
					t.Errorf("got %v, the engine answers %v", got, want)
				}
				wantAsked := tc.asked
				if wantAsked == nil {
					wantAsked = []string{tc.expr}
				}
				if !slices.Equal(normalized(t, asked), normalized(t, wantAsked)) {
					t.Errorf("asked %q, want %q", asked, wantAsked)
				}
			}
		})
	}
}

// normalized parses and prints each query, so that queries compare
// whatever their spacing.
func normalized(t *testing.T, qs []string) []string {
	t.Helper()
	out := make([]string, len(qs))
	for i, q := range qs {
		e, err := parser.NewParser(parser.Options{}).ParseExpr(q)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e.String()
	}
	return out
}

func sameVector(a, b promql.Vector) bool {
	return slices.EqualFunc(a, b, func(x, y promql.Sample) bool {
		return labels.Equal(x.Metric, y.Metric) && x.F == y.F
	})
}

// TestManagerShortCircuits evaluates the built-in rules over a server
// far from every bottleneck and checks that the manager asks
// LLMKVCacheUndersized's first condition and not the rest of the rule.
func TestManagerShortCircuits(t *testing.T) {
	store := openStore(t, t.TempDir())
	var asked []string
	engine := store.QueryFunc()
	o := onStore(store, ManagerOptions{EvaluationInterval: 15 * time.Second})
	o.QueryFunc = func(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
		asked = append(asked, q)
		return engine(ctx, q, ts)
	}
	m := NewManager(o)
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	appendAt(t, store, t0,
		point{signal("llm_kv_cache_usage_ratio", "a:8000", "vllm", "m"), 0.3},
		point{signal("llm_requests_waiting", "a:8000", "vllm", "m"), 0},
		point{signal("llm_requests_running", "a:8000", "vllm", "m"), 12},
	)
	m.Eval(context.Background(), t0)
	first := normalized(t, []string{`max_over_time(llm_kv_cache_usage_ratio[15m]) >= 0.9`})[0]
	sawFirst := false
	for _, q := range asked {
		if normalized(t, []string{q})[0] == first {
			sawFirst = true
		}
		if leftmostOperand(q) == first {
			t.Errorf("the whole rule was evaluated: %s", q)
		}
	}
	if !sawFirst {
		t.Errorf("%s was not asked; asked:\n%q", first, asked)
	}
}
