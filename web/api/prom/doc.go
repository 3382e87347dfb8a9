// Package prom serves the query part of Prometheus's HTTP API (instant and
// range queries, series, label names and values, build information) over
// the agent's local TSDB, with Prometheus's own API code, so that Grafana
// and other PromQL clients can use the agent as a Prometheus data source.
//
// It answers queries only: it never writes to the store, and it serves
// none of Prometheus's administrative, remote-write or status endpoints.
package prom
