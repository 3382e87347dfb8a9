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
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/collector"
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

// TestFieldNamesFollowOneConvention checks the naming convention the
// description states, on every field of every request and answer and on
// every query parameter: snake_case, and numbers of seconds named
// …_seconds. The envelope's errorType keeps the spelling of Prometheus's
// API, which the envelope copies.
func TestFieldNamesFollowOneConvention(t *testing.T) {
	api := New(Options{Rules: rules.NewManager(rules.ManagerOptions{}), Recommendations: &agent.Pipeline{},
		Health: func() Health { return Health{} }, Config: func() (string, error) { return "", nil }})
	doc, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// A number whose name says it is a span of time must say its unit.
	timeSpan := regexp.MustCompile(`duration|interval|time|wait|delay|timeout|latency|_for`)
	seen := map[*openapi3.Schema]bool{}
	fields := 0
	var walk func(where string, ref *openapi3.SchemaRef)
	walk = func(where string, ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		seen[ref.Value] = true
		for name, p := range ref.Value.Properties {
			fields++
			switch {
			case where == "errorEnvelope" && name == "errorType":
			case !snake.MatchString(name):
				t.Errorf("%s.%s is not snake_case", where, name)
			case p.Value != nil && (p.Value.Type.Is("number") || p.Value.Type.Is("integer")) && timeSpan.MatchString(name) && !strings.HasSuffix(name, "_seconds"):
				t.Errorf("%s.%s is a span of time: name it …_seconds", where, name)
			}
			walk(where+"."+name, p)
		}
		walk(where+"[]", ref.Value.Items)
		walk(where+"{}", ref.Value.AdditionalProperties.Schema)
	}
	for name, s := range doc.Components.Schemas {
		walk(name, s)
	}
	if fields < 100 {
		t.Fatalf("only %d fields found in the description's schemas", fields)
	}
	for path, item := range doc.Paths.Map() {
		for method, o := range item.Operations() {
			for _, p := range o.Parameters {
				if p.Value.In == openapi3.ParameterInQuery && !snake.MatchString(p.Value.Name) {
					t.Errorf("%s %s: query parameter %s is not snake_case", method, path, p.Value.Name)
				}
			}
		}
	}
}

// TestReadmeListsEveryRoute keeps the README's endpoint table and the
// routes the OpenAPI description is built from the same: every GET or
// POST row names a route, every route has a row, and the filters a row
// lists are the route's query parameters.
func TestReadmeListsEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	api := New(Options{Rules: rules.NewManager(rules.ManagerOptions{}), Recommendations: &agent.Pipeline{},
		Health: func() Health { return Health{} }, Config: func() (string, error) { return "", nil },
		Forecasts: func(context.Context, time.Time) ([]rules.SaturationETA, error) { return nil, nil },
		Targets:   func() []collector.TargetHealth { return nil }})
	params := map[string][]string{}
	for _, rt := range api.routes() {
		var names []string
		for _, p := range rt.doc.query {
			names = append(names, p.name)
		}
		params[rt.method+" "+rt.path] = names
	}
	code := regexp.MustCompile("`([^`]+)`")
	listed := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "| `GET /api/v1/") && !strings.HasPrefix(line, "| `POST /api/v1/") {
			continue
		}
		cells := strings.Split(line, " | ")
		var method, path string
		for _, m := range code.FindAllStringSubmatch(cells[0], -1) {
			if mth, p, ok := strings.Cut(m[1], " "); ok {
				method, path = mth, strings.TrimPrefix(p, "/api/v1")
			} else {
				// "`POST /api/v1/workflows/{id}/approve`, `/reject`": the
				// last segment replaced.
				path = path[:strings.LastIndex(path, "/")] + m[1]
			}
			path, _, _ = strings.Cut(path, "?")
			key := method + " " + path
			want, ok := params[key]
			if !ok {
				t.Errorf("README lists %s, which the API does not serve", key)
				continue
			}
			listed[key] = true
			if _, filters, ok := strings.Cut(cells[1], "filters "); ok {
				var got []string
				for _, f := range code.FindAllStringSubmatch(filters, -1) {
					got = append(got, f[1])
				}
				if !slices.Equal(got, want) {
					t.Errorf("README lists the filters %v for %s; its query parameters are %v", got, key, want)
				}
			}
		}
	}
	for key := range params {
		if !listed[key] {
			t.Errorf("%s is not in the README's endpoint table", key)
		}
	}
}
