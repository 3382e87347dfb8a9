package rules

import (
	"testing"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// FuzzRuleFile feeds the rule loader arbitrary rule files: it must load
// them or report errors that name the file, never panic.
func FuzzRuleFile(f *testing.F) {
	testutil.Seeds(f, "builtin/*.yml", "testdata/*.yaml")
	l := NewLoader(LoaderOptions{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rf, errs := l.parse("fuzz.yml", b)
		if rf == nil && len(errs) == 0 {
			t.Fatal("no rules and no error")
		}
		for _, err := range errs {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
		}
	})
}
