// Package workflow owns optimisation workflows: carrying one chosen change through approval, staged rollout, statistical validation, and promotion or rollback, durably.
// It owns the state machine, the bbolt store and event log, which approval alerts exist and when they are sent (an AlertSink delivers them), executors, and the canary-versus-baseline validator.
// It must not evaluate bottleneck rules or compute recommendations; it receives a Change and reads signals only through collector.Source.
package workflow
