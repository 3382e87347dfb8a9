package collector

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// FuzzProfile feeds the engine-profile parser arbitrary files: a profile
// or errors that say something, never a panic.
func FuzzProfile(f *testing.F) {
	testutil.Seeds(f, "profiles/*.yml")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, errs := ParseProfile("fuzz.yml", b)
		if p == nil && len(errs) == 0 {
			t.Fatal("no profile and no error")
		}
		for _, err := range errs {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
		}
	})
}

// FuzzExposition feeds arbitrary /metrics pages through the exposition
// parser into the local TSDB, as a scrape appends them: an error or
// samples, never a panic. Nothing is committed.
func FuzzExposition(f *testing.F) {
	testutil.Seeds(f, "profiles/testdata/*/*.prom")
	store := openTestStore(f)
	target := labels.FromStrings("instance", "fuzz:8000", "job", "fuzz")
	f.Fuzz(func(t *testing.T, b []byte) {
		app := store.Appender(context.Background())
		_ = AppendExposition(app, b, t0, target)
		if err := app.Rollback(); err != nil {
			t.Fatal(err)
		}
	})
}
