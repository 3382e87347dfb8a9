// Package instantql evaluates instant PromQL queries of a common subset
// directly over a storage.Querier: selectors with or without offset;
// rate, increase, resets, deriv, predict_linear and functions over time
// of a range; a few functions of one vector; sum, avg, min, max, count
// and group by labels; arithmetic and comparisons with one-to-one or
// many-to-one matching; and the set operators. It computes what Prometheus's engine computes, sample
// for sample and bit for bit, without the engine's machinery for range
// queries, which an instant query over a thousand servers pays for in
// allocations and time several times over.
//
// Whatever it does not evaluate exactly as the engine does it declines
// with ErrUnsupported, when compiling or, for what only the data shows
// (a histogram where a float was expected, two series that would become
// one), when evaluating; the caller then asks the engine.
package instantql
