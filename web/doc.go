// Package web serves perfagent over HTTP: the landing page, the lifecycle
// endpoints (/-/healthy, /-/ready, and /-/reload and /-/quit when
// enabled), /metrics and the REST API
// under /api/v1, through exporter-toolkit for TLS and basic auth.
//
// It holds no business logic; it routes requests to the components.
package web
