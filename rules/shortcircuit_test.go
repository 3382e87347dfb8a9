package rules

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestShortCircuit checks that a chain of `and` and `unless` whose
// leftmost operand is empty is answered empty with only that operand
// asked, that an `or` of chains is evaluated without its alternatives
// whose leftmost operand is empty, and that every expression gets the
// engine's answer.
func TestShortCircuit(t *testing.T) {
	s := openStore(t, t.TempDir())
	appendAt(t, s, t0,
		point{signal("llm_kv_cache_usage_ratio", "a:8000", "vllm", "m"), 0.95},
		point{signal("llm_kv_cache_usage_ratio", "b:8000", "vllm", "m"), 0.40},
		point{signal("llm_requests_waiting", "a:8000", "vllm", "m"), 3},
		point{signal("llm_requests_waiting", "b:8000", "vllm", "m"), 0},
	)
	const (
		full   = `llm_kv_cache_usage_ratio >= 0.9`
		empty  = `llm_kv_cache_usage_ratio > 1`
		full2  = `llm_requests_waiting > 0`
		empty2 = `llm_requests_waiting > 10`
		// Chains whose first operand is each of the above.
		fullChain   = full + ` and on (instance) llm_requests_waiting > 0`
		full2Chain  = full2 + ` unless on (instance) llm_kv_cache_usage_ratio < 0.5`
		emptyChain  = empty + ` and on (instance) llm_requests_waiting > 0`
		empty2Chain = empty2 + ` and llm_kv_cache_usage_ratio`
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
		{"or of operands that are no chains", empty + ` or llm_requests_waiting > 0`, nil},
		{"or of chains, both empty", emptyChain + ` or ` + empty2Chain, []string{empty, empty2}},
		{"or of chains, the left one empty", emptyChain + ` or on (instance) ` + full2Chain, []string{empty, full2, full2Chain}},
		{"or of chains, the right one empty", fullChain + ` or ` + empty2Chain, []string{full, empty2, fullChain}},
		{"or of chains, none empty", fullChain + ` or on (model) ` + full2Chain, []string{full, full2, fullChain + ` or on (model) ` + full2Chain}},
		{"or of three, the middle one empty", `(` + fullChain + ` or ` + emptyChain + `) or on (instance) ` + full2Chain,
			[]string{full, empty, full2, fullChain + ` or on (instance) ` + full2Chain}},
		{"an or inside parentheses keeps them",
			`(` + fullChain + ` or on (instance) (` + full2Chain + ` or on (model) ` + fullChain + `)) or ` + emptyChain,
			[]string{full, full2, full, empty, `(` + fullChain + ` or on (instance) (` + full2Chain + ` or on (model) ` + fullChain + `))`}},
		{"or inside labels, one side empty",
			`label_replace((` + emptyChain + `) or (` + full2Chain + `), "resource", "queue", "", "")`,
			[]string{empty, full2, `label_replace((` + full2Chain + `), "resource", "queue", "", "")`}},
		{"an operand that is no chain is kept", `llm_requests_waiting > 0 or (` + empty + ` and llm_requests_waiting)`,
			[]string{empty, `llm_requests_waiting > 0`}},
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
// LLMKVCacheUndersized's first condition and not the rest of the rule,
// and the forecasts' first conditions only.
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
		if e, err := newParser().ParseExpr(q); err == nil && leftmostOperand(e) == first {
			t.Errorf("the whole rule was evaluated: %s", q)
		}
		// Each forecast is an `or` of two fits, and a healthy server
		// has neither: only their first conditions are asked, and
		// none of them reads the residual variance.
		if strings.Contains(q, "stdvar_over_time") {
			t.Errorf("a forecast was evaluated beyond its first conditions: %s", q)
		}
	}
	if !sawFirst {
		t.Errorf("%s was not asked; asked:\n%q", first, asked)
	}
}
