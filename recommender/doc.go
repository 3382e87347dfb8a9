// Package recommender owns the recommendation catalog and the strategies that size concrete changes from bottlenecks, engine settings, signals and model shapes.
// It must not do IO or read a clock: every result is a pure, deterministic function of now and its Input.
package recommender
