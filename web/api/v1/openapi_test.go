package v1

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/rules"
)

// validated checks every exchange with h against the API's OpenAPI
// description: a response must match the description (a field the
// description lacks, or a required field missing, fails), and a request
// the description forbids must be refused with a 4xx. Every test that
// builds its API with newTestAPI, newPipelineAPI or newWorkflowAPI goes
// through it.
func validated(t *testing.T, api *API, h http.Handler) http.Handler {
	t.Helper()
	doc, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI description is not valid: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/openapi.") {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		route, params, findErr := router.FindRoute(r)
		var reqErr error
		in := &openapi3filter.RequestValidationInput{Request: r.Clone(r.Context()), PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
		if findErr == nil {
			in.Request.Body = io.NopCloser(bytes.NewReader(body))
			// Bodies are JSON whatever the Content-Type says (curl -d sends
			// a form's), as the description says.
			in.Request.Header.Set("Content-Type", "application/json")
			reqErr = openapi3filter.ValidateRequest(r.Context(), in)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())

		where := r.Method + " " + r.URL.String()
		if findErr != nil {
			if rec.Code < 400 {
				t.Errorf("%s: answered %d, but the description has no such operation (%v)", where, rec.Code, findErr)
			}
			return
		}
		if reqErr != nil && rec.Code < 400 {
			t.Errorf("%s: answered %d to a request the description forbids: %v", where, rec.Code, reqErr)
		}
		if err := openapi3filter.ValidateResponse(r.Context(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
			Options: &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true},
		}); err != nil {
			t.Errorf("%s: the answer (%d) does not match the description: %v\n%s", where, rec.Code, err, truncate(rec.Body.String()))
		} else if rec.Code == http.StatusOK {
			succeeded.Store(route.Method+" "+route.Path, true)
		}
	})
}

// succeeded records the operations whose success answer a test validated.
var succeeded sync.Map

// TestMain fails the run when a whole run of the package leaves an
// operation whose success answer no test validated: its schema would be
// unchecked.
func TestMain(m *testing.M) {
	code := m.Run()
	if code != 0 || flag.Lookup("test.run").Value.String() != "" {
		os.Exit(code)
	}
	api := New(Options{Rules: rules.NewManager(rules.ManagerOptions{}), Recommendations: &agent.Pipeline{},
		Health: func() Health { return Health{} }, Config: func() (string, error) { return "", nil }})
	var missing []string
	for _, rt := range api.routes() {
		if _, ok := succeeded.Load(rt.method + " " + rt.path); !ok {
			missing = append(missing, rt.method+" /api/v1"+rt.path)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "no test validated a success answer of:\n  %s\n", strings.Join(missing, "\n  "))
		os.Exit(1)
	}
	os.Exit(code)
}

func truncate(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// TestOpenAPIServed serves the description as JSON and YAML, each a valid
// OpenAPI 3 document that lists every route.
func TestOpenAPIServed(t *testing.T) {
	r := newPipelineAPI(t)
	for _, path := range []string{"/api/v1/openapi.json", "/api/v1/openapi.yaml"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != 200 {
			t.Fatalf("%s = %d %s", path, w.Code, w.Body.String())
		}
		doc, err := openapi3.NewLoader().LoadFromData(w.Body.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, want := range []string{"/signals", "/instances/{instance}", "/bottlenecks", "/optimization/recommend", "/workflows/{id}/instances/{instance}/resolve"} {
			if doc.Paths.Value(want) == nil {
				t.Errorf("%s lacks %s", path, want)
			}
		}
		if !strings.Contains(w.Body.String(), "basicAuth") {
			t.Errorf("%s does not describe the authentication", path)
		}
	}
}
