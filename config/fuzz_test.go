package config

import (
	"testing"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// FuzzLoad feeds the configuration loader arbitrary files: it must answer
// with a configuration or with errors that say something, never panic.
func FuzzLoad(f *testing.F) {
	testutil.Seeds(f, "../examples/*.yml", "../examples/demo/perfagent.yml", "../examples/kubernetes/extras/*.yml")
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Load(b, "fuzz.yml")
		switch {
		case err == nil && cfg == nil:
			t.Fatal("no configuration and no error")
		case err != nil && err.Error() == "":
			t.Fatal("an error without a message")
		}
	})
}
