package collector

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signals"
)

// ownedCacheSize bounds the memo of instances' owners; past it the memo
// starts again, so instances that come and go cannot grow it for ever.
const ownedCacheSize = 1 << 16

// shardedSource answers with the series of one shard's instances only. It
// filters the answers of a source that knows the whole fleet (a remote
// Prometheus): PromQL has no hash function, so the share cannot be put
// into the queries themselves. Series without an instance label are kept.
type shardedSource struct {
	src   Source
	shard shard.Shard

	mtx   sync.Mutex
	owned map[string]bool
}

// NewShardedSource returns a Source that answers with the series of sh's
// instances only, or src itself when sh is the whole fleet.
func NewShardedSource(src Source, sh shard.Shard) Source {
	if !sh.Sharded() {
		return src
	}
	return &shardedSource{src: src, shard: sh, owned: map[string]bool{}}
}

// Query implements Source.
func (s *shardedSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	v, err := s.src.Query(ctx, expr, ts)
	if err != nil {
		return nil, err
	}
	out := v[:0]
	for _, smp := range v {
		if s.owns(smp.Metric.Get(signals.LabelInstance)) {
			out = append(out, smp)
		}
	}
	return out, nil
}

// QueryRange implements Source.
func (s *shardedSource) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	m, err := s.src.QueryRange(ctx, expr, start, end, step)
	if err != nil {
		return nil, err
	}
	out := m[:0]
	for _, series := range m {
		if s.owns(series.Metric.Get(signals.LabelInstance)) {
			out = append(out, series)
		}
	}
	return out, nil
}

// owns memoizes Shard.Owns: every query of a cycle names the same
// instances, and hashing each sample's would cost an md5 per sample.
func (s *shardedSource) owns(instance string) bool {
	if instance == "" {
		return true
	}
	s.mtx.Lock()
	defer s.mtx.Unlock()
	own, ok := s.owned[instance]
	if !ok {
		if len(s.owned) >= ownedCacheSize {
			clear(s.owned)
		}
		own = s.shard.Owns(instance)
		s.owned[instance] = own
	}
	return own
}
