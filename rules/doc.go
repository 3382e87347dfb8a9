// Package rules owns bottleneck rules: alerting-rule files over the signals, loaded and
// validated, evaluated against the local TSDB, unit-tested, and exported as bottlenecks.
// It must not recommend or post anything itself: alerts leave through a NotifyFunc.
package rules
