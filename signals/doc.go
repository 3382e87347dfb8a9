// Package signals names perfagent's normalized signals: the catalog of
// signal names, the identity labels every signal carries, the engine names,
// and the sample and value types that carry them between packages.
//
// It holds names and plain types only; it computes nothing and imports
// nothing of perfagent's.
package signals
