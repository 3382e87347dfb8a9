// Package cost puts a price on serving: what each instance costs per hour
// from the GPUs it holds and their configured price, what a million
// prompt or generated tokens cost at the measured token rates, the idle
// share of under-utilised instances, and the expected cost change of a
// recommendation. docs/cost.md describes every figure.
package cost
