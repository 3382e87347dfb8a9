package shard

import (
	"fmt"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
)

// hashLabel holds the hash of the instance label, as the label a
// Prometheus user's hashmod rule writes.
const hashLabel = "__tmp_perfagent_shard"

// Shard is one agent's share of the fleet: the instances whose hash
// modulo Count is Index. The zero value is the whole fleet, shard 0 of 1.
type Shard struct {
	index, count uint64
	hash         *relabel.Config
}

// New returns shard index of count. count is at least 1 and index lies in
// [0, count).
func New(index, count int) (Shard, error) {
	if count < 1 {
		return Shard{}, fmt.Errorf("shard count %d: it must be at least 1", count)
	}
	if index < 0 || index >= count {
		return Shard{}, fmt.Errorf("shard index %d: with %d shards it must be between 0 and %d", index, count, count-1)
	}
	s := Shard{index: uint64(index), count: uint64(count)}
	s.hash = &relabel.Config{
		SourceLabels:         model.LabelNames{model.InstanceLabel},
		Separator:            relabel.DefaultRelabelConfig.Separator,
		Regex:                relabel.DefaultRelabelConfig.Regex,
		Modulus:              s.count,
		TargetLabel:          hashLabel,
		Replacement:          relabel.DefaultRelabelConfig.Replacement,
		Action:               relabel.HashMod,
		NameValidationScheme: model.UTF8Validation,
	}
	return s, nil
}

// Index is the shard's number, from 0.
func (s Shard) Index() int { return int(s.index) }

// Count is the number of shards the fleet is split into.
func (s Shard) Count() int { return max(int(s.count), 1) }

// Sharded reports whether the fleet is split at all.
func (s Shard) Sharded() bool { return s.count > 1 }

// Of is the shard that owns instance.
func (s Shard) Of(instance string) int {
	if !s.Sharded() {
		return 0
	}
	lb := labels.NewBuilder(labels.FromStrings(model.InstanceLabel, instance))
	relabel.ProcessBuilder(lb, s.hash)
	// hashmod writes a decimal number below the modulus.
	n, _ := strconv.Atoi(lb.Get(hashLabel))
	return n
}

// Owns reports whether instance belongs to this shard.
func (s Shard) Owns(instance string) bool { return !s.Sharded() || s.Of(instance) == int(s.index) }

// String is "shard 1 of 4" (shards counted from 0).
func (s Shard) String() string { return fmt.Sprintf("shard %d of %d", s.index, s.Count()) }
