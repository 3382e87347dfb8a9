package prom

import (
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	promapi "github.com/prometheus/prometheus/web/api/v1"
)

// Options are what the query API reads.
type Options struct {
	// Queryable is the local TSDB.
	Queryable storage.SampleAndChunkQueryable
	// Engine evaluates the queries.
	Engine promql.QueryEngine
	// Target are the labels (job, instance) a Prometheus scraping the
	// agent would give its series: the API shows the store as that
	// Prometheus would hold it (honor_labels: true), each series lacking
	// one of them with the agent's.
	Target labels.Labels
	// LookbackDelta is the engine's, reported to clients that ask.
	LookbackDelta time.Duration
	// Version, Revision, Branch, BuildUser and BuildDate are the agent's
	// build, answered at /api/v1/status/buildinfo.
	Version, Revision, Branch, BuildUser, BuildDate string
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Endpoint is one route of Prometheus's API that the agent serves.
type Endpoint struct {
	// Path is under /api/v1, in gorilla/mux's syntax.
	Path    string
	Methods []string
}

// Endpoints are the routes served: what Grafana's Prometheus data source
// needs to run dashboards and explore metrics.
var Endpoints = []Endpoint{
	{"/query", []string{http.MethodGet, http.MethodPost}},
	{"/query_range", []string{http.MethodGet, http.MethodPost}},
	{"/series", []string{http.MethodGet, http.MethodPost}},
	{"/labels", []string{http.MethodGet, http.MethodPost}},
	{"/label/{name}/values", []string{http.MethodGet}},
	{"/status/buildinfo", []string{http.MethodGet}},
}

// Register adds the Endpoints under r, which is mounted at /api/v1.
func Register(r *mux.Router, o Options) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	build := &promapi.PrometheusVersion{
		Version: o.Version, Revision: o.Revision, Branch: o.Branch,
		BuildUser: o.BuildUser, BuildDate: o.BuildDate, GoVersion: runtime.Version(),
	}
	// Prometheus's API takes every part of a Prometheus server; the
	// endpoints served here read only the queryable, the engine and the
	// build information, so the other parts are left out.
	api := promapi.NewAPI(
		o.Engine, targetView{SampleAndChunkQueryable: o.Queryable, target: o.Target}, nil, nil,
		nil, nil, nil, // scrape pools, targets, Alertmanagers
		nil, nil, promapi.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, // TSDB admin
		false, 0, // search
		logger, nil,
		0, 0, 0, // remote read
		false, nil, nil, build,
		nil, nil, nil, nil, nil, // notifications, gatherer, registerer, stats renderer
		false, nil, false, false, false, // remote and OTLP write
		o.LookbackDelta, false, false, nil, nil,
		promapi.OpenAPIOptions{}, nil, false, 0,
	)
	routes := route.New().WithPrefix("/api/v1")
	api.Register(routes)
	for _, e := range Endpoints {
		// mux upper-cases the methods in the slice it is given: a copy
		// keeps agents built at once (tests) from writing Endpoints together.
		r.Handle(e.Path, routes).Methods(slices.Clone(e.Methods)...)
	}
}
