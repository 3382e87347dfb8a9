// Package alerting delivers perfagent's alerts (bottlenecks and workflow
// approval requests) to Alertmanager with Prometheus's own notifier,
// configured by the top-level alerting section in Prometheus's shape.
//
// It owns one notifier for the whole agent, so both kinds of alert share
// one queue per Alertmanager, one set of HTTP clients and one set of
// metrics: perfagent_notifications_* (the notifier's
// prometheus_notifications_* under the agent's name).
//
// It must not decide which alerts exist or when they are sent again: the
// rule manager and the workflow controller do, as Prometheus's rule
// manager does for its notifier.
package alerting
