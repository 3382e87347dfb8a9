package gziphttp

import (
	"net/http"
	"strconv"
	"strings"
)

// Accepts reports whether r's Accept-Encoding allows gzip: gzip or * with
// a quality above zero (RFC 9110, section 12.5.3). An explicit gzip entry
// wins over *.
func Accepts(r *http.Request) bool {
	star := false
	for _, h := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(h, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "*" {
				continue
			}
			ok := quality(params) > 0
			if name == "gzip" {
				return ok
			}
			star = ok
		}
	}
	return star
}

// quality is the q parameter of an Accept-Encoding entry, 1 when absent.
func quality(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0
		}
		return q
	}
	return 1
}
