// Package promapi asks the Prometheus HTTP query API (Prometheus, Thanos,
// Mimir, Cortex, VictoriaMetrics) for instant and range queries and
// decodes the answers straight into PromQL's vector and matrix types.
//
// It stands in for client_golang's API client on the remote source's hot
// path. That client decodes every series into a map and every sample
// through encoding/json's reflection; at a thousand instances, decoding
// the answers was a third of the agent's CPU and of the bytes it
// allocated. This package reads the answer as it arrives, with a
// streaming JSON iterator, and builds each series' labels once. Native
// histograms with custom buckets are rebuilt from the buckets the answer
// lists (histogram.go).
package promapi
