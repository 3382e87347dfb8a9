package gziphttp

import (
	"net/http/httptest"
	"testing"
)

func TestAccepts(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"deflate, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"br", false},
		{"*", true},
		{"*;q=0", false},
		{"gzip;q=0, *", false},
		{"identity, *;q=0.1", true},
		{"gzip;q=nonsense", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Accept-Encoding", tc.header)
		}
		if got := Accepts(r); got != tc.want {
			t.Errorf("Accept-Encoding %q: Accepts = %v, want %v", tc.header, got, tc.want)
		}
	}
}
