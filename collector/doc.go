// Package collector owns where perfagent's data comes from: the Source
// interface (a remote Prometheus HTTP API, or the agent's own scrape of
// model servers), the engine profiles that turn each engine's metrics into
// normalized signals, engine detection and settings probes. Signal history
// lives in the signalstore package; the sections it reads, in config.
//
// It must not know about bottlenecks, recommendations or workflows; those
// packages read signals through the interfaces defined here.
package collector
