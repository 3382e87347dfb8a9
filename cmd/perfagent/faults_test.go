package main

import (
	"fmt"
	"os"
	"testing"
)

// The fault suite (TestFault*) runs real components through outages,
// crashes and load, and measures what the agent does. It takes minutes, so
// it runs only when PERFAGENT_FAULTS is 1, as make faults (and CI) runs it;
// each scenario then appends its figure, one line, to the file named by
// PERFAGENT_FAULTS_REPORT.

// faultSuite skips the test unless the fault suite was asked for.
func faultSuite(t *testing.T) {
	t.Helper()
	if os.Getenv("PERFAGENT_FAULTS") != "1" {
		t.Skip("a fault scenario; make faults runs them")
	}
}

// figure reports a scenario's result: one line, "scenario: figure", in
// the test's log and in the fault suite's report.
func figure(t *testing.T, scenario, format string, args ...any) {
	t.Helper()
	line := scenario + ": " + fmt.Sprintf(format, args...)
	t.Log(line)
	path := os.Getenv("PERFAGENT_FAULTS_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("fault report: %v", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Fatalf("fault report %s: %v", path, err)
	}
}
