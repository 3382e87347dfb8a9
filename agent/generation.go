package agent

// Generation numbers the state a cycle leaves behind: it changes when a
// cycle has completed (its signals, rules and recommendations are all in
// place), when the source fails or comes back, and when a configuration
// is put in force. What is derived from that state alone can be computed
// once per generation and kept until it changes.
func (p *Pipeline) Generation() uint64 {
	// Both counts only grow, so their sum changes whenever either does.
	g := (p.cycles.Load() + p.reloads.Load()) << 1
	if !p.coll.Ready() {
		// A failed cycle is a generation of its own: the signals it
		// leaves stale must stop being served at once.
		g |= 1
	}
	return g
}

// Reloaded starts a generation without a cycle: once a configuration is in
// force, nothing derived from the previous one (the rule groups, the
// targets) is served as current.
func (p *Pipeline) Reloaded() { p.reloads.Add(1) }
