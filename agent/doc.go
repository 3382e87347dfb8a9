// Package agent owns perfagent's pipeline: one cycle collects signals, writes the SLO target series, evaluates the bottleneck rules and sizes recommendations, and it keeps the latest report the API reads.
// It is the only place where these steps are put in order; the daemon, `perfagent analyze` and the accuracy replays all run it.
// It must not parse flags or configuration files, serve HTTP or read the clock: every step runs at a time its caller passes in.
package agent
