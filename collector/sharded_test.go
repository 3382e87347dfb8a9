package collector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/shard"
)

// TestShardedSourceKeepsItsShare: the shards of a split fleet answer with
// disjoint sets of instances that together are all of them, in instant
// and range queries; series without an instance pass, and errors too.
func TestShardedSourceKeepsItsShare(t *testing.T) {
	store := openTestStore(t)
	const n = 40
	for i := range n {
		scrapeText(t, store, fmt.Sprintf("10.1.0.%d:8000", i), t0, "vllm:num_requests_running 1\n")
	}
	ctx := context.Background()
	const count = 3
	seen := map[string]int{}
	for i := range count {
		sh, err := shard.New(i, count)
		if err != nil {
			t.Fatal(err)
		}
		src := NewShardedSource(store, sh)
		v, err := src.Query(ctx, "vllm:num_requests_running", t0)
		if err != nil {
			t.Fatal(err)
		}
		m, err := src.QueryRange(ctx, "vllm:num_requests_running", t0, t0.Add(time.Minute), 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != len(m) || len(v) == 0 || len(v) == n {
			t.Errorf("%s: %d series in an instant query, %d in a range query, of %d", sh, len(v), len(m), n)
		}
		inRange := map[string]bool{}
		for _, s := range m {
			inRange[s.Metric.Get("instance")] = true
		}
		for _, s := range v {
			inst := s.Metric.Get("instance")
			if !sh.Owns(inst) || !inRange[inst] {
				t.Errorf("%s answers with %s (in the range query too: %v)", sh, inst, inRange[inst])
			}
			seen[inst]++
		}
		if sum, err := src.Query(ctx, "sum(vllm:num_requests_running)", t0); err != nil || len(sum) != 1 || sum[0].F != n {
			t.Errorf("%s: a series without instance = %v, %v; want the fleet's sum %d", sh, sum, err, n)
		}
		if _, err := src.Query(ctx, "rate(", t0); err == nil {
			t.Errorf("%s: a bad query answered", sh)
		}
	}
	for i := range n {
		if inst := fmt.Sprintf("10.1.0.%d:8000", i); seen[inst] != 1 {
			t.Errorf("%s: in %d shards, want 1", inst, seen[inst])
		}
	}
	if src := NewShardedSource(store, shard.Shard{}); src != Source(store) {
		t.Error("the whole fleet is filtered")
	}
}
