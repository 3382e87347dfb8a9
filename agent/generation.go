package agent

// Generation numbers the state a cycle leaves behind: it changes when a
// cycle has completed (its signals, rules and recommendations are all in
// place) and when the source fails or comes back. What is derived from
// that state alone can be computed once per generation and kept until it
// changes.
func (p *Pipeline) Generation() uint64 {
	g := p.cycles.Load() << 1
	if !p.coll.Ready() {
		// A failed cycle is a generation of its own: the signals it
		// leaves stale must stop being served at once.
		g |= 1
	}
	return g
}
