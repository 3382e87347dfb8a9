package v1

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var pathParams = regexp.MustCompile(`\{\w+\}`)

// FuzzRequests sends arbitrary query parameters and bodies to every route
// of the API, as alice or bob: each answer is the JSON envelope, and bad
// input is a 4xx, never a 500 or a panic.
func FuzzRequests(f *testing.F) {
	api, h, _, _ := workflowAPI(f)
	routes := api.routes()
	for i, body := range []string{
		"", `{}`, `{"recommendation":"lower_max_num_seqs","instance":"a:1"}`, `{"proposal_hash":"x","gate":"start"}`,
		`{"instances":["a:1"],"engine":"vllm","window":"5m"}`, `{"instances":["a:1"],"rules":["X"],"at":"2026-01-01T00:00:00Z"}`,
		`{"bottleneck":"B1","objectives":{"ttft_p95_seconds":0.3}}`, `{"reason":"x"}`,
	} {
		f.Add(uint8(i), "start=1793620800&end=1793621400&step=30s&state=firing&instance=a:1", []byte(body), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, route uint8, query string, body []byte, asBob bool) {
		rt := routes[int(route)%len(routes)]
		q := url.Values{}
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			q.Add(k, v)
		}
		path := pathParams.ReplaceAllString(rt.path, "a:1")
		req := httptest.NewRequest(rt.method, "/api/v1"+path+"?"+q.Encode(), strings.NewReader(string(body)))
		user := "alice"
		if asBob {
			user = "bob"
		}
		req.SetBasicAuth(user, "pw")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var env envelope
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
			t.Fatalf("%s %s: not the envelope: %v\n%s", rt.method, req.URL, err, w.Body.String())
		}
		if w.Code >= http.StatusInternalServerError && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with %q: %d %s", rt.method, req.URL, body, w.Code, env.Error)
		}
	})
}
