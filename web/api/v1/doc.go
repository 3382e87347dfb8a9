// Package v1 serves perfagent's REST API under /api/v1: the JSON envelope
// of the Prometheus HTTP API, typed errors that name the bad field, the
// handlers over the narrow interfaces it declares, and the OpenAPI
// description built from the same route table and the handlers' types.
//
// It must not reach storage or engines directly; it asks the interfaces.
package v1
