package main

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/recommender"
)

func TestWriteLoopCostTable(t *testing.T) {
	applied := &recommender.Recommendation{ID: "scale_out"}
	results := []*LoopResult{
		{Scenario: "a", Applied: applied, Cost: &CostResult{Predicted: 1, Before: 0.5, After: 1.2, Error: 0.2}},
		{Scenario: "b", Applied: applied},
		{Scenario: "c", Applied: applied, Cost: &CostResult{Predicted: 1, Before: 1, After: 1.6, Error: 0.6}},
		{Scenario: "d", Reason: "never fired"},
	}
	var out bytes.Buffer
	if got := writeLoopCostTable(&out, results); math.Abs(got-0.4) > 1e-12 {
		t.Errorf("median error %g, want 0.4", got)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "a ") || !strings.HasPrefix(lines[2], "c ") {
		t.Errorf("table lists %d lines, want a header and a and c:\n%s", len(lines), out.String())
	}
	if got := writeLoopCostTable(&bytes.Buffer{}, nil); !math.IsNaN(got) {
		t.Errorf("median error of nothing %g, want NaN", got)
	}
}
