package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestURLHidesItsPassword(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"http://am:9093/", "http://am:9093/"},
		{"https://user:s3cret@am:9093/prefix", "https://user:xxxxx@am:9093/prefix"},
		{"http://user@am:9093", "http://user@am:9093"},
		{"http://user:s3cret@am:bad port", "(a URL that does not parse, hidden)"},
	}
	for _, tc := range tests {
		u := URL(tc.raw)
		y, err := yaml.Marshal(struct{ U URL }{u})
		if err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		for what, got := range map[string]string{
			"String": u.String(), "%v": fmt.Sprintf("%v", u), "%q": fmt.Sprintf("%q", u),
			"YAML": string(y), "JSON": string(j),
		} {
			if !strings.Contains(got, tc.want) || strings.Contains(got, "s3cret") {
				t.Errorf("%s of %q = %q, want it to show %q", what, tc.raw, got, tc.want)
			}
		}
		if u.Raw() != tc.raw {
			t.Errorf("Raw() = %q, want %q", u.Raw(), tc.raw)
		}
	}
}
