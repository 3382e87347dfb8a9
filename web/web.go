package web

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/net/netutil"

	"github.com/optiinfra/perfagent/web/api/prom"
	apiv1 "github.com/optiinfra/perfagent/web/api/v1"
)

// Options build a Handler.
type Options struct {
	Logger *slog.Logger
	// Gatherer gathers what /metrics serves at every scrape.
	Gatherer prometheus.Gatherer
	// PerCycle, when set with Generation, gather the metrics that change
	// once per cycle (signals, bottlenecks, recommendations): /metrics
	// serves them beside Gatherer's, gathered and encoded once per
	// generation. Each gathers families none of the others has, and
	// checked already (by its registry, or by how it builds them): they
	// are put together without checking each series a second time. One
	// that implements TextFamilies writes the text format itself. No
	// series may be both in PerCycle and in Gatherer.
	PerCycle []prometheus.Gatherer
	// Generation numbers the state PerCycle reads (agent.Pipeline's).
	Generation func() uint64
	// Registerer receives perfagent_http_request_duration_seconds; nil
	// registers nowhere.
	Registerer prometheus.Registerer
	API        *apiv1.API
	// Query, when set, serves Prometheus's query API over the local TSDB
	// at /api/v1/query and its siblings (prom.Endpoints).
	Query *prom.Options
	// Ready reports whether the agent can answer: the first collection
	// has completed and the source is up.
	Ready   func() bool
	Version string
	// EnableLifecycle turns on /-/reload and /-/quit, as Prometheus's
	// --web.enable-lifecycle does.
	EnableLifecycle bool
	// ReadTimeout bounds reading a request, headers and body, and how
	// long a connection may stay idle between requests; 0 means no limit.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the
	// last byte of its answer, so that a client that reads nothing cannot
	// hold a connection; 0 means no limit.
	WriteTimeout time.Duration
	// MaxConnections caps the connections served at once, as Prometheus's
	// --web.max-connections does; 0 means no limit.
	MaxConnections int
}

// maxReadHeaderTimeout bounds reading a request's headers whatever
// ReadTimeout is: headers are small, and a client that sends them slowly
// (slowloris) holds a connection while it does.
const maxReadHeaderTimeout = 10 * time.Second

// Handler is perfagent's HTTP server.
type Handler struct {
	o        Options
	duration *prometheus.HistogramVec
	router   *mux.Router
	reloadCh chan chan error
	quitCh   chan struct{}
	quitOnce sync.Once
	stopping atomic.Bool
}

// New builds the routes.
func New(o Options) *Handler {
	h := &Handler{o: o, router: mux.NewRouter(), reloadCh: make(chan chan error), quitCh: make(chan struct{})}
	h.duration = promauto.With(o.Registerer).NewHistogramVec(prometheus.HistogramOpts{
		Name:    "perfagent_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route (handler), method and status code.",
		Buckets: []float64{.001, .005, .025, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"handler", "method", "code"})
	r := h.router
	r.Use(h.instrument)
	r.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "perfagent is Healthy.")
	}).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/-/ready", h.ready).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/-/reload", h.lifecycle(h.reload)).Methods(http.MethodPost, http.MethodPut)
	r.HandleFunc("/-/quit", h.lifecycle(h.quit)).Methods(http.MethodPost, http.MethodPut)
	for _, page := range uiPages {
		r.HandleFunc(page, h.uiShell).Methods(http.MethodGet)
	}
	files := http.FileServerFS(assets)
	r.PathPrefix("/ui/").Handler(files).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/static/").Handler(files).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/docs", h.apiDocs(true)).Methods(http.MethodGet)
	r.HandleFunc("/redoc", h.apiDocs(false)).Methods(http.MethodGet)
	// Profiles of the running agent, as Prometheus serves them.
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index)
	metrics := &metricsHandler{live: &sharedGatherer{g: o.Gatherer}, perCycle: disjointGatherers(o.PerCycle), generation: o.Generation, errorf: func(format string, args ...any) {
		o.Logger.Error(fmt.Sprintf(format, args...))
	}}
	if metrics.generation == nil {
		metrics.perCycle, metrics.generation = disjointGatherers{}, func() uint64 { return 0 }
	}
	r.Handle("/metrics", metrics)
	api := r.PathPrefix("/api/v1").Subrouter()
	if o.Query != nil {
		prom.Register(api, *o.Query)
	}
	if o.API != nil {
		o.API.Register(api)
	}
	return h
}

// Router returns the routes, for tests and for mounting.
func (h *Handler) Router() http.Handler { return h.router }

// Reload delivers a channel per /-/reload request; the receiver answers
// with the reload's error or nil.
func (h *Handler) Reload() <-chan chan error { return h.reloadCh }

// Quit is closed by the first /-/quit request.
func (h *Handler) Quit() <-chan struct{} { return h.quitCh }

// SetStopping makes /-/ready fail while the agent shuts down.
func (h *Handler) SetStopping() { h.stopping.Store(true) }

func (h *Handler) ready(w http.ResponseWriter, _ *http.Request) {
	if h.stopping.Load() || !h.o.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "perfagent is not ready: waiting for a successful collection.")
		return
	}
	fmt.Fprintln(w, "perfagent is Ready.")
}

// lifecycle serves next only with EnableLifecycle, answering as
// Prometheus does otherwise.
func (h *Handler) lifecycle(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.o.EnableLifecycle {
			http.Error(w, "Lifecycle API is not enabled.", http.StatusForbidden)
			return
		}
		next(w, r)
	}
}

func (h *Handler) quit(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "Requesting termination... Goodbye!")
	h.quitOnce.Do(func() { close(h.quitCh) })
}

func (h *Handler) reload(w http.ResponseWriter, r *http.Request) {
	rc := make(chan error)
	select {
	case h.reloadCh <- rc:
	case <-r.Context().Done():
		http.Error(w, "reload request cancelled", http.StatusServiceUnavailable)
		return
	}
	select {
	case err := <-rc:
		if err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
		}
	case <-r.Context().Done():
		http.Error(w, "reload request cancelled", http.StatusServiceUnavailable)
	}
}

// Serve answers on l through exporter-toolkit (TLS and basic auth from
// webConfigFile) until ctx ends, then shuts down gracefully. The
// Options' timeouts and connection limit apply.
func (h *Handler) Serve(ctx context.Context, l net.Listener, webConfigFile string) error {
	headerTimeout := maxReadHeaderTimeout
	if t := h.o.ReadTimeout; t > 0 && t < headerTimeout {
		headerTimeout = t
	}
	srv := &http.Server{
		Handler:           h.router,
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       h.o.ReadTimeout,
		WriteTimeout:      h.o.WriteTimeout,
		// Idle keep-alive connections are closed after the read timeout,
		// as Prometheus's --web.read-timeout does (net/http's default
		// when IdleTimeout is 0).
		IdleTimeout: h.o.ReadTimeout,
		ErrorLog:    slog.NewLogLogger(h.o.Logger.Handler(), slog.LevelError),
	}
	if h.o.MaxConnections > 0 {
		l = netutil.LimitListener(l, h.o.MaxConnections)
	}
	errc := make(chan error, 1)
	go func() {
		flags := &web.FlagConfig{WebConfigFile: &webConfigFile}
		errc <- web.Serve(l, srv, flags, h.o.Logger)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}

// render writes a page of t, or says where the same data is as JSON when
// the page cannot be rendered.
func (h *Handler) render(w http.ResponseWriter, t *template.Template, data any, what, jsonPath string) {
	var page bytes.Buffer
	if err := t.Execute(&page, data); err != nil {
		h.o.Logger.Error("Rendering a page failed", "page", what, "err", err)
		http.Error(w, "rendering "+what+" failed; its JSON is at "+jsonPath, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = page.WriteTo(w)
}

// instrument times every request that matched a route, labelled with the
// route's template so that paths with ids make one series.
func (h *Handler) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := "unknown"
		if cr := mux.CurrentRoute(r); cr != nil {
			if tmpl, err := cr.GetPathTemplate(); err == nil {
				route = tmpl
			}
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(sw, r)
		h.duration.WithLabelValues(route, r.Method, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
