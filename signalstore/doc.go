// Package signalstore is perfagent's local TSDB: the upstream Prometheus
// TSDB and PromQL engine that keep signal history and rule state and, in
// embedded mode, hold the raw metrics scraped from model servers in memory
// beside it for as long as they are read (raw.go). Queries read both as
// one store; an instant query is answered directly where
// internal/instantql evaluates it, by the engine otherwise.
//
// It stores and answers queries; it knows nothing of engines, signals or
// rules.
package signalstore
