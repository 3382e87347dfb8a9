// Package config is perfagent's configuration file: every section, their
// defaults (applied in UnmarshalYAML, as Prometheus does), their checks,
// and Load and LoadFile, which report every problem as file:line: field.
// URLs hide their passwords and secrets are Prometheus's Secret and HTTP
// client types wherever the configuration is printed.
//
// It reads and checks configuration only; it builds no component and
// imports no perfagent package but the signal names.
package config
