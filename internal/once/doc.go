// Package once computes each value of a keyed set once, however many
// goroutines ask for it at the same time: the first computes it, the
// others wait for it and share it.
package once
