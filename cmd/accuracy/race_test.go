//go:build race

package main

// raceEnabled is true when the tests are built with -race; the replays of
// the floor tests are then too slow to run, and `make test` runs them in a
// second pass without it.
const raceEnabled = true
