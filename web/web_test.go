package web

import (
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestHandler(ready *atomic.Bool) *Handler {
	return New(Options{
		Logger:   slog.New(slog.DiscardHandler),
		Gatherer: prometheus.NewRegistry(),
		Ready:    ready.Load,
		Version:  "1.2.3",
		// As --web.enable-lifecycle.
		EnableLifecycle: true,
	})
}

func serve(h *Handler, method, path string) (int, string) {
	w := httptest.NewRecorder()
	h.Router().ServeHTTP(w, httptest.NewRequest(method, path, nil))
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestReadiness(t *testing.T) {
	var ready atomic.Bool
	h := newTestHandler(&ready)
	if code, _ := serve(h, http.MethodGet, "/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("ready before the first collection = %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := serve(h, http.MethodGet, "/-/ready"); code != http.StatusOK {
		t.Errorf("ready after collection = %d, want 200", code)
	}
	h.SetStopping()
	if code, _ := serve(h, http.MethodGet, "/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("ready while stopping = %d, want 503", code)
	}
	if code, body := serve(h, http.MethodGet, "/-/healthy"); code != http.StatusOK || !strings.Contains(body, "Healthy") {
		t.Errorf("healthy = %d %q", code, body)
	}
}

func TestReloadAnswersWithTheReloadError(t *testing.T) {
	var ready atomic.Bool
	h := newTestHandler(&ready)
	go func() {
		rc := <-h.Reload()
		rc <- errors.New("p.yml:3: field x: bad")
		rc = <-h.Reload()
		rc <- nil
	}()
	if code, body := serve(h, http.MethodPost, "/-/reload"); code != http.StatusInternalServerError || !strings.Contains(body, "p.yml:3: field x: bad") {
		t.Errorf("failed reload = %d %q", code, body)
	}
	if code, _ := serve(h, http.MethodPost, "/-/reload"); code != http.StatusOK {
		t.Errorf("good reload = %d", code)
	}
	if code, _ := serve(h, http.MethodGet, "/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload = %d, want 405", code)
	}
}

func TestLifecycleEndpointsNeedTheFlag(t *testing.T) {
	off := New(Options{Logger: slog.New(slog.DiscardHandler), Gatherer: prometheus.NewRegistry(), Ready: func() bool { return true }})
	for _, path := range []string{"/-/reload", "/-/quit"} {
		if code, body := serve(off, http.MethodPost, path); code != http.StatusForbidden || !strings.Contains(body, "Lifecycle API is not enabled") {
			t.Errorf("POST %s without the flag = %d %q, want 403", path, code, body)
		}
	}
	select {
	case <-off.Quit():
		t.Error("a refused /-/quit asked the agent to stop")
	default:
	}

	var ready atomic.Bool
	on := newTestHandler(&ready)
	for range 2 {
		if code, _ := serve(on, http.MethodPost, "/-/quit"); code != http.StatusOK {
			t.Errorf("POST /-/quit = %d", code)
		}
	}
	select {
	case <-on.Quit():
	default:
		t.Error("/-/quit did not ask the agent to stop")
	}
}

// TestUIShell serves the UI's shell on every page route, with the script
// and stylesheets it names, all embedded.
func TestUIShell(t *testing.T) {
	var ready atomic.Bool
	h := newTestHandler(&ready)
	asset := regexp.MustCompile(`(?:src|href)="(/(?:ui|static)/[^"]+)"`)
	for _, page := range []string{"/", "/instances/10.0.0.7:8000", "/workflows", "/workflows/wf-1", "/bottlenecks", "/recommendations", "/rules", "/status"} {
		code, body := serve(h, http.MethodGet, page)
		if code != http.StatusOK || !strings.Contains(body, `<main id="main"`) {
			t.Errorf("%s = %d", page, code)
		}
		if page != "/" {
			continue
		}
		refs := asset.FindAllStringSubmatch(body, -1)
		if len(refs) != 4 {
			t.Errorf("the shell names %d local assets, want the script, uPlot and two stylesheets", len(refs))
		}
		for _, m := range refs {
			if code, b := serve(h, http.MethodGet, m[1]); code != http.StatusOK || len(b) < 500 {
				t.Errorf("asset %s = %d (%d bytes)", m[1], code, len(b))
			}
		}
	}
	if code, _ := serve(h, http.MethodGet, "/nothing-here"); code != http.StatusNotFound {
		t.Errorf("unknown path = %d, want 404", code)
	}
}

func TestRequestsAreTimedByRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := New(Options{Logger: slog.New(slog.DiscardHandler), Gatherer: reg, Registerer: reg})
	serve(h, http.MethodGet, "/")
	serve(h, http.MethodGet, "/workflows/wf-1")
	serve(h, http.MethodGet, "/workflows/wf-2")
	want := map[string]uint64{`/ GET 200`: 1, `/workflows/{id} GET 200`: 2}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "perfagent_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var key []string
			for _, l := range m.GetLabel() {
				key = append(key, l.GetValue())
			}
			// Labels come sorted by name: code, handler, method.
			got[key[1]+" "+key[2]+" "+key[0]] = m.GetHistogram().GetSampleCount()
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("timed requests %v, want %v", got, want)
	}
}

// TestAPIDocsWorkOffline serves Swagger UI and ReDoc pages whose every
// script and stylesheet is embedded in the agent: each one the pages name
// is served, and none comes from another host.
func TestAPIDocsWorkOffline(t *testing.T) {
	h := New(Options{Logger: slog.New(slog.DiscardHandler), Gatherer: prometheus.NewRegistry()})
	asset := regexp.MustCompile(`(?:src|href)="([^"]+)"`)
	for _, page := range []string{"/docs", "/redoc"} {
		code, body := serve(h, http.MethodGet, page)
		if code != http.StatusOK || !strings.Contains(body, "api/v1/openapi.json") {
			t.Fatalf("%s = %d %s", page, code, body)
		}
		refs := asset.FindAllStringSubmatch(body, -1)
		if len(refs) == 0 {
			t.Fatalf("%s names no asset", page)
		}
		for _, m := range refs {
			if strings.Contains(m[1], "://") || strings.HasPrefix(m[1], "//") {
				t.Errorf("%s loads %s from another host; it must work offline", page, m[1])
				continue
			}
			w := httptest.NewRecorder()
			h.Router().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/"+m[1], nil))
			if w.Code != http.StatusOK || w.Body.Len() < 1000 {
				t.Errorf("%s: asset %s = %d (%d bytes)", page, m[1], w.Code, w.Body.Len())
			}
		}
	}
}

// The profiling endpoints answer as Prometheus's do.
func TestProfilingEndpoints(t *testing.T) {
	srv := httptest.NewServer(newTestHandler(new(atomic.Bool)).Router())
	defer srv.Close()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/goroutine?debug=1": "goroutine profile:",
		"/debug/pprof/cmdline":           "",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %d %.100s, want 200 with %q", path, resp.StatusCode, b, want)
		}
	}
}
