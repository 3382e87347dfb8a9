package simulator

import (
	"testing"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// FuzzParseFleet feeds the fleet-file parser arbitrary files: a fleet or
// an error, never a panic.
func FuzzParseFleet(f *testing.F) {
	testutil.Seeds(f, "../examples/demo/fleet.yml", "scenarios/*.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		fc, err := ParseFleet("fuzz.yml", b)
		if fc == nil && err == nil {
			t.Fatal("no fleet and no error")
		}
	})
}
