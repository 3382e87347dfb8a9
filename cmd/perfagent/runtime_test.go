package main

import (
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

func TestSetRuntime(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	if err := setRuntime(daemonFlags{gogc: 37}, logger); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 37 {
		t.Errorf("GOGC %d, want the flag's 37", got)
	}

	t.Setenv("GOGC", "80")
	if err := setRuntime(daemonFlags{gogc: 37}, logger); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC %d: the flag overrode the environment", got)
	}

	for _, ratio := range []float64{0, -0.5, 1.5} {
		if err := setRuntime(daemonFlags{gogc: 50, autoMemLimit: true, memLimitRatio: ratio}, logger); err == nil {
			t.Errorf("ratio %g accepted", ratio)
		}
	}
}
