package main

import (
	"os"
	"testing"
)

// TestMain lets tests run the agent as a child process of the test binary
// itself (so that they can SIGKILL it): with PERFAGENT_TEST_RUN_MAIN=1 the
// binary is perfagent.
func TestMain(m *testing.M) {
	if os.Getenv("PERFAGENT_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
