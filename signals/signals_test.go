package signals

import (
	"strings"
	"testing"
)

func TestCatalog(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range All() {
		if seen[s.Name] {
			t.Errorf("%s is listed twice", s.Name)
		}
		seen[s.Name] = true
		if !strings.HasPrefix(s.Name, "llm_") || s.Help == "" {
			t.Errorf("%s: signal names start with llm_ and have help", s.Name)
		}
		if got, ok := Lookup(s.Name); !ok || got != s {
			t.Errorf("Lookup(%q) = %+v, %v", s.Name, got, ok)
		}
		if s.Quantiles != strings.HasSuffix(s.Name, "_seconds") {
			t.Errorf("%s: latency signals, and only they, carry quantiles", s.Name)
		}
	}
	for _, name := range []string{InstanceInfo, KVCacheCapacity, MaxRunningRequests, PrefixCachingEnabled} {
		if !seen[name] {
			t.Errorf("%s is not in the catalog", name)
		}
	}
	if _, ok := Lookup("llm_nonexistent"); ok {
		t.Error("Lookup found a name that is not in the catalog")
	}
}
