// Package web serves perfagent over HTTP: the web UI (web/ui, rendered in
// the browser from the API), Swagger UI and ReDoc over the API's OpenAPI
// description, the lifecycle endpoints (/-/healthy, /-/ready, and /-/reload
// and /-/quit when enabled), /metrics and the REST API under /api/v1,
// through exporter-toolkit for TLS and basic auth, timing every request.
//
// It holds no business logic; it routes requests to the components.
package web
