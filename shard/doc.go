// Package shard splits a fleet across several agents. Each model-server
// instance belongs to exactly one of Count shards: the md5 hash of its
// instance label modulo Count, computed by Prometheus's own relabelling
// code, so an agent's share is the share a Prometheus configured with the
// same hashmod rule scrapes.
package shard
