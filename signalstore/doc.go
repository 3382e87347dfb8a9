// Package signalstore is perfagent's local TSDB: the upstream Prometheus
// TSDB and PromQL engine that keep signal history, rule state and, in
// embedded mode, the raw metrics scraped from model servers.
//
// It stores and answers queries; it knows nothing of engines, signals or
// rules.
package signalstore
