package v1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/cost"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signals"
)

// Collector is what the API needs of the collector.
type Collector interface {
	Latest() *collector.Snapshot
	Collect(ctx context.Context, now time.Time, o collector.CollectOptions) (*collector.Snapshot, error)
	Engines() []string
	SignalExpressions() map[string]map[string][]string
}

// History answers range queries over the local signal store.
type History interface {
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error)
}

// Health is the agent's own state, for GET /api/v1/health.
type Health struct {
	Status         string    `json:"status"`
	Mode           string    `json:"mode"`
	SourceUp       bool      `json:"source_up"`
	Ready          bool      `json:"ready"`
	LastCollection time.Time `json:"last_collection,omitzero"`
	Instances      int       `json:"instances"`
	Version        string    `json:"version"`
	// Targets counts the scrape targets (embedded mode); the API fills it
	// in from Options.Targets.
	Targets *TargetsSummary `json:"targets,omitempty"`
	// EvaluationIntervalSeconds is how often signals are computed; pages
	// refresh at this pace.
	EvaluationIntervalSeconds float64 `json:"evaluation_interval_seconds"`
	// Alertmanagers are the URLs alerts are posted to.
	Alertmanagers []string `json:"alertmanagers"`
	// Shard is the agent's share of the fleet.
	Shard Shard `json:"shard"`
}

// Shard is an agent's share of a fleet split across several agents: the
// instances whose hash modulo Count is Index.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Options build an API.
type Options struct {
	Collector Collector
	History   History
	// Rules serves the bottleneck endpoints; nil leaves them out.
	Rules Rules
	// Recommendations serves the recommendation endpoints; nil leaves
	// them out.
	Recommendations Recommendations
	// Workflows serves the workflow endpoints; nil answers them with 503
	// (no executor configured).
	Workflows Workflows
	// Authenticated returns the user a request was authenticated as (basic
	// auth checked by the web server). nil means no authentication is
	// configured, and every request that changes state is refused.
	Authenticated func(*http.Request) (string, bool)
	// Health reports the agent's state; nil leaves GET /health out.
	Health func() Health
	// Config returns the configuration in force as YAML, secrets hidden;
	// nil leaves GET /config out.
	Config func() (string, error)
	// Now is the clock.
	Now func() time.Time
	// Version is the agent's, for the OpenAPI description.
	Version string
	// SLO returns the SLO targets of a model; nil leaves them zero.
	SLO func(model string) SLOTargets
	// Shard is the agent's share of the fleet; workflows are refused on
	// instances of other shards. The zero value is the whole fleet.
	Shard shard.Shard
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64
	// Forecasts returns the saturation forecasts recorded at a time; nil
	// leaves GET /forecasts out and instances without forecasts.
	Forecasts func(ctx context.Context, at time.Time) ([]rules.SaturationETA, error)
	// Costs prices the instances of the last collection; nil leaves
	// instances without cost.
	Costs func() []cost.Instance
	// Targets reports the scrape targets (embedded mode); nil leaves GET
	// /targets out, and the targets out of GET /health.
	Targets func() []collector.TargetHealth
	// Generation numbers the state the read endpoints (health, signals,
	// instances and one instance, targets, forecasts, bottlenecks, rules,
	// recommendations) answer from; each of their answers is built and
	// encoded once per generation and served from memory until it
	// changes. nil builds every answer per request.
	Generation func() uint64
	// MaxExpensive caps the expensive requests (collections, rule
	// evaluations and recommendation passes on demand) served at once;
	// more are refused with 429. 0 means 2.
	MaxExpensive int
}

// API serves /api/v1.
type API struct {
	o       Options
	answers answerCache
	// expensive holds a token per expensive request being served.
	expensive chan struct{}
}

// New builds an API.
func New(o Options) *API {
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = "unknown"
	}
	if o.MaxExpensive <= 0 {
		o.MaxExpensive = 2
	}
	return &API{o: o, expensive: make(chan struct{}, o.MaxExpensive)}
}

// Error types of the envelope, as in the Prometheus HTTP API.
const (
	ErrBadData     = "bad_data"
	ErrNotFound    = "not_found"
	ErrInternal    = "internal"
	ErrUnavailable = "unavailable"
	// ErrUnprocessable answers a well-formed request that cannot be
	// carried out safely as it stands (422).
	ErrUnprocessable = "unprocessable"
	// ErrTooManyRequests answers an expensive request while as many as
	// the API serves at once are running (429).
	ErrTooManyRequests = "too_many_requests"
)

// retryAfterSeconds is the Retry-After of a 429: about what an expensive
// request over a large fleet takes.
const retryAfterSeconds = 5

type apiError struct {
	typ    string
	status int
	err    error
}

func badData(field string, format string, args ...any) *apiError {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &apiError{typ: ErrBadData, status: http.StatusBadRequest, err: errors.New(msg)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{typ: ErrNotFound, status: http.StatusNotFound, err: fmt.Errorf(format, args...)}
}

type response struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

type handlerFunc func(r *http.Request) (any, *apiError)

// route is one endpoint of the API.
type route struct {
	path, method string
	f            handlerFunc
	doc          op
	// cached answers are built once per generation (Options.Generation).
	cached bool
	// expensive requests are bounded by Options.MaxExpensive.
	expensive bool
}

// serve answers r with rt.
func (a *API) serve(w http.ResponseWriter, r *http.Request, rt route) {
	switch {
	case rt.cached && a.o.Generation != nil:
		// The generation is read before the state: an answer built from a
		// newer state than its generation is rebuilt at the next change,
		// while the other order could keep an old one for a whole cycle.
		gen := a.o.Generation()
		// The answer is everyone's: a client that goes away while it is
		// built must not leave the others its cancelled query's error.
		shared := r.WithContext(context.WithoutCancel(r.Context()))
		a.answers.get(gen, cacheKey(r, rt.doc.query), func() *answer { return newAnswer(rt.f(shared)) }).serve(w, r)
		return
	case rt.expensive:
		select {
		case a.expensive <- struct{}{}:
			defer func() { <-a.expensive }()
		default:
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
			newAnswer(nil, &apiError{typ: ErrTooManyRequests, status: http.StatusTooManyRequests,
				err: fmt.Errorf("%d expensive requests (collections, rule evaluations, recommendation passes) are running, as many as the agent serves at once; retry in %d seconds", cap(a.expensive), retryAfterSeconds)}).serve(w, r)
			return
		}
	}
	newAnswer(rt.f(r)).serve(w, r)
}

// Query parameters shared by several routes.
var (
	instanceParam = param{name: "instance", description: "keep this instance (host:port) only"}
	engineParam   = param{name: "engine", description: "keep this engine only (vllm, sglang, tgi, trtllm, llamacpp, …)"}
	modelParam    = param{name: "model", description: "keep this served model only"}
)

// routes are the API's routes with the options it was built with.
func (a *API) routes() []route {
	var routes []route
	if a.o.Health != nil {
		routes = append(routes, route{path: "/health", method: http.MethodGet, f: a.health, cached: true, doc: op{summary: "The agent's state as of the last cycle: mode, readiness, last collection, scrape targets counted by health and engine, Alertmanagers", resp: Health{}}})
	}
	if a.o.Config != nil {
		routes = append(routes, route{path: "/config", method: http.MethodGet, f: a.config, doc: op{summary: "The configuration in force, secrets hidden", resp: ConfigResponse{}}})
	}
	if a.o.Targets != nil {
		routes = append(routes, route{path: "/targets", method: http.MethodGet, f: a.targets, cached: true, doc: op{summary: "The scrape targets as of the last cycle, in configuration order, with health, last scrape and engine; paginated", resp: TargetsResponse{},
			query: append([]param{targetFilters[0].param, targetFilters[1].param}, pageParams...)}})
	}
	routes = append(routes, []route{
		{path: "/signals", method: http.MethodGet, f: a.signals, cached: true, doc: op{summary: "The signal catalog with each engine's expressions", resp: []SignalInfo{}}},
		{path: "/instances", method: http.MethodGet, f: a.instances, cached: true, doc: op{summary: "The instances of the last collection, by name, with engine, model, settings and signals; paginated", resp: InstancesResponse{},
			query: append([]param{engineParam, modelParam}, pageParams...)}},
		{path: "/instances/{instance}", method: http.MethodGet, f: a.instance, cached: true, doc: op{summary: "One instance with its signal history, as of the last cycle", resp: InstanceDetail{}, query: []param{
			{name: "start", description: "start of the history, RFC 3339 or Unix seconds (default: 15 minutes before end)"},
			{name: "end", description: "end of the history, RFC 3339 or Unix seconds (default: the last collection, the newest point of every signal)"},
			{name: "step", description: "resolution, a duration (15s) or seconds (default: the range over 250 points)"},
		}}},
		{path: "/metrics/collect", method: http.MethodPost, f: a.collect, expensive: true, doc: op{summary: "Collect now and return the snapshot (not stored); 429 while too many expensive requests run", body: CollectRequest{}, resp: collector.Snapshot{}}},
	}...)
	if a.o.Forecasts != nil {
		routes = append(routes, route{path: "/forecasts", method: http.MethodGet, f: a.forecasts, cached: true, doc: op{summary: "Time until each instance's and model pool's KV cache or queue saturates at its current growth, where saturation is ahead (docs/forecasts.md)", resp: ForecastsResponse{}, query: []param{
			instanceParam, engineParam, modelParam,
			{name: "resource", description: "kv_cache or queue"},
		}}})
	}
	if a.o.Rules != nil {
		routes = append(routes,
			route{path: "/bottlenecks", method: http.MethodGet, f: a.bottlenecks, cached: true, doc: op{summary: "Active bottlenecks with their evidence, as of the last cycle; paginated", resp: BottlenecksResponse{}, query: append([]param{
				instanceParam, engineParam, modelParam,
				{name: "category", description: "memory, latency, throughput, utilization or errors"},
				{name: "severity", description: "info, warning or critical"},
				{name: "state", description: "pending or firing"},
			}, pageParams...)}},
			route{path: "/rules", method: http.MethodGet, f: a.rules, cached: true, doc: op{summary: "Rule groups and rules with health, last error and evaluation time, as of the last cycle", resp: RulesResponse{}}},
			route{path: "/analysis/detect-bottlenecks", method: http.MethodPost, f: a.detect, expensive: true, doc: op{summary: "Evaluate the rules now or at a past time without changing live state; 429 while too many expensive requests run", body: DetectRequest{}, resp: DetectResponse{}}},
		)
	}
	if a.o.Recommendations != nil {
		routes = append(routes,
			route{path: "/recommendations", method: http.MethodGet, f: a.recommendations, cached: true, doc: op{summary: "The latest ranked recommendations, and the bottlenecks skipped, of the same instance, engine and model; the recommendations paginated", resp: RecommendationsResponse{}, query: append([]param{
				instanceParam, engineParam, modelParam, {name: "id", description: "keep this recommendation id only"},
			}, pageParams...)}},
			route{path: "/optimization/recommend", method: http.MethodPost, f: a.recommend, expensive: true, doc: op{summary: "A fresh recommendation pass, narrowed to an instance or bottleneck; 429 while too many expensive requests run", body: RecommendRequest{}, resp: recommender.Report{}}},
		)
		routes = append(routes, a.workflowRoutes()...)
	}
	return routes
}

// Register adds the API's routes to r, which is mounted at /api/v1, and
// its OpenAPI description at /api/v1/openapi.json and openapi.yaml.
func (a *API) Register(r *mux.Router) {
	routes := a.routes()
	r.HandleFunc("/openapi.json", a.openAPIHandler(false)).Methods(http.MethodGet)
	r.HandleFunc("/openapi.yaml", a.openAPIHandler(true)).Methods(http.MethodGet)
	// Methods are checked here rather than with mux's matchers so that a
	// wrong method gets the JSON envelope too.
	byPath := map[string]map[string]route{}
	var paths []string
	for _, rt := range routes {
		if byPath[rt.path] == nil {
			byPath[rt.path] = map[string]route{}
			paths = append(paths, rt.path)
		}
		byPath[rt.path][rt.method] = rt
	}
	for _, path := range paths {
		methods := byPath[path]
		r.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			rt, ok := methods[r.Method]
			if !ok {
				allowed := make([]string, 0, len(methods))
				for m := range methods {
					allowed = append(allowed, m)
				}
				sort.Strings(allowed)
				newAnswer(nil, &apiError{typ: ErrBadData, status: http.StatusMethodNotAllowed, err: fmt.Errorf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or "))}).serve(w, r)
				return
			}
			a.serve(w, r, rt)
		})
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		newAnswer(nil, notFound("no API endpoint %s %s", r.Method, r.URL.Path)).serve(w, r)
	})
}

func (a *API) config(*http.Request) (any, *apiError) {
	y, err := a.o.Config()
	if err != nil {
		return nil, &apiError{typ: ErrInternal, status: http.StatusInternalServerError, err: err}
	}
	return ConfigResponse{YAML: y}, nil
}

// ConfigResponse is the answer of GET /api/v1/config.
type ConfigResponse struct {
	// YAML is the configuration in force, secrets shown as <secret>.
	YAML string `json:"yaml"`
}

// SignalInfo is one catalog entry with each engine's expressions.
type SignalInfo struct {
	signals.Signal
	// Expressions holds, per engine, the PromQL of each rule recording the
	// signal (one per quantile for latency signals); an engine without a
	// rule does not expose the signal.
	Expressions map[string][]string `json:"expressions"`
}

func (a *API) signals(*http.Request) (any, *apiError) {
	exprs := a.o.Collector.SignalExpressions()
	var out []SignalInfo
	known := map[string]bool{}
	for _, s := range signals.All() {
		known[s.Name] = true
		e := exprs[s.Name]
		if e == nil {
			e = map[string][]string{}
		}
		out = append(out, SignalInfo{Signal: s, Expressions: e})
	}
	var extra []string
	for name := range exprs {
		if !known[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		out = append(out, SignalInfo{Signal: signals.Signal{Name: name, Help: "Recorded by a profile loaded from a file."}, Expressions: exprs[name]})
	}
	return out, nil
}

func (a *API) latest() (*collector.Snapshot, *apiError) {
	snap := a.o.Collector.Latest()
	if snap == nil {
		return nil, &apiError{typ: ErrUnavailable, status: http.StatusServiceUnavailable, err: errors.New("no collection has completed yet; see /api/v1/health")}
	}
	return snap, nil
}

func (a *API) instances(r *http.Request) (any, *apiError) {
	snap, apiErr := a.latest()
	if apiErr != nil {
		return nil, apiErr
	}
	q := r.URL.Query()
	engine, model := q.Get("engine"), q.Get("model")
	out := []*collector.Instance{}
	for _, in := range snap.Instances {
		if (engine == "" || in.Engine == engine) && (model == "" || in.Model == model) {
			out = append(out, in)
		}
	}
	items, next, apiErr := page(out, q)
	if apiErr != nil {
		return nil, apiErr
	}
	return InstancesResponse{Time: snap.Time, Instances: items, NextPageToken: next}, nil
}

// InstancesResponse is the answer of GET /api/v1/instances: the last
// collection's instances.
type InstancesResponse struct {
	Time      time.Time             `json:"time"`
	Instances []*collector.Instance `json:"instances"`
	// NextPageToken, as page_token, asks for the next page; it is left
	// out on the last.
	NextPageToken string `json:"next_page_token,omitempty"`
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// InstanceDetail is the answer of GET /api/v1/instances/{instance}.
type InstanceDetail struct {
	*collector.Instance
	Time    time.Time       `json:"time"`
	History []HistorySeries `json:"history"`
	// SLO are the targets the rules compare the instance's model with.
	SLO SLOTargets `json:"slo"`
	// Bottlenecks are the spans the instance's bottleneck rules were
	// firing in the range, the latest first.
	Bottlenecks []BottleneckPeriod `json:"bottlenecks"`
	// Forecasts are the saturation forecasts of the instance and of its
	// model pool (no instance) at the last collection.
	Forecasts []rules.SaturationETA `json:"forecasts"`
	// Cost is what the instance costs, when it is priced (docs/cost.md).
	Cost *cost.Instance `json:"cost,omitempty"`
}

// SLOTargets are the SLO targets of one model.
type SLOTargets struct {
	TTFTP95Seconds float64 `json:"ttft_p95_seconds"`
	ITLP95Seconds  float64 `json:"itl_p95_seconds"`
	ErrorRatio     float64 `json:"error_ratio"`
}

// HistorySeries is one signal's values over the requested range.
type HistorySeries struct {
	Name     string      `json:"name"`
	Quantile string      `json:"quantile,omitempty"`
	Values   [][2]string `json:"values"`
}

const maxPoints = 11000

func (a *API) instance(r *http.Request) (any, *apiError) {
	name := mux.Vars(r)["instance"]
	snap, apiErr := a.latest()
	if apiErr != nil {
		return nil, apiErr
	}
	in := snap.Instance(name)
	if in == nil {
		return nil, notFound("instance %q is not known; GET /api/v1/instances lists the instances seen in the last collection", name)
	}
	q := r.URL.Query()
	// The history ends at the last collection: signals are written by
	// collections only, so a later end adds no point, and an end that
	// moves with the clock would make every request's answer its own.
	end := snap.Time
	if v := q.Get("end"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return nil, badData("end", "%v", err)
		}
		end = t
	}
	start := end.Add(-15 * time.Minute)
	if v := q.Get("start"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return nil, badData("start", "%v", err)
		}
		start = t
	}
	if end.Before(start) {
		return nil, badData("end", "%s is before start %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	step := time.Duration(math.Max(float64(end.Sub(start))/250, float64(time.Second))).Truncate(time.Second)
	if v := q.Get("step"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, badData("step", "%v", err)
		}
		if d <= 0 {
			return nil, badData("step", "must be greater than zero")
		}
		step = d
	}
	if end.Sub(start)/step > maxPoints {
		return nil, badData("step", "%s over %s gives more than %d points per series; use a larger step", step, end.Sub(start), maxPoints)
	}
	expr := fmt.Sprintf(`{__name__=~"llm_.+", instance=%q}`, name)
	m, err := a.o.History.QueryRange(r.Context(), expr, start, end, step)
	if err != nil {
		return nil, &apiError{typ: ErrInternal, status: http.StatusInternalServerError, err: err}
	}
	hist := make([]HistorySeries, 0, len(m))
	for _, s := range m {
		hs := HistorySeries{Name: s.Metric.Get(model.MetricNameLabel), Quantile: s.Metric.Get(signals.LabelQuantile)}
		for _, p := range s.Floats {
			hs.Values = append(hs.Values, [2]string{strconv.FormatFloat(float64(p.T)/1000, 'f', -1, 64), strconv.FormatFloat(p.F, 'f', -1, 64)})
		}
		hist = append(hist, hs)
	}
	// The rules' ALERTS series say when each bottleneck was firing.
	alerts, err := a.o.History.QueryRange(r.Context(), fmt.Sprintf(`ALERTS{alertstate="firing", instance=%q}`, name), start, end, step)
	if err != nil {
		return nil, &apiError{typ: ErrInternal, status: http.StatusInternalServerError, err: err}
	}
	detail := InstanceDetail{Instance: in, Time: snap.Time, History: hist, Bottlenecks: firingPeriods(alerts, step)}
	if a.o.SLO != nil {
		detail.SLO = a.o.SLO(in.Model)
	}
	detail.Forecasts = []rules.SaturationETA{}
	if a.o.Forecasts != nil {
		etas, err := a.o.Forecasts(r.Context(), snap.Time)
		if err != nil {
			return nil, &apiError{typ: ErrInternal, status: http.StatusInternalServerError, err: err}
		}
		for _, e := range etas {
			if e.Instance == in.Instance || (e.Instance == "" && e.Engine == in.Engine && e.Model == in.Model) {
				detail.Forecasts = append(detail.Forecasts, e)
			}
		}
	}
	if a.o.Costs != nil {
		for _, c := range a.o.Costs() {
			if c.Instance == in.Instance {
				detail.Cost = &c
			}
		}
	}
	return detail, nil
}

// ForecastsResponse is the answer of GET /api/v1/forecasts: the
// saturation forecasts at the last collection, instances first, then the
// model pools (without instance).
type ForecastsResponse struct {
	Time      time.Time             `json:"time"`
	Forecasts []rules.SaturationETA `json:"forecasts"`
}

func (a *API) forecasts(r *http.Request) (any, *apiError) {
	snap, apiErr := a.latest()
	if apiErr != nil {
		return nil, apiErr
	}
	q := r.URL.Query()
	if v := q.Get("resource"); v != "" && v != rules.ResourceKVCache && v != rules.ResourceQueue {
		return nil, badData("resource", "%q is neither %s nor %s", v, rules.ResourceKVCache, rules.ResourceQueue)
	}
	etas, err := a.o.Forecasts(r.Context(), snap.Time)
	if err != nil {
		return nil, &apiError{typ: ErrInternal, status: http.StatusInternalServerError, err: err}
	}
	out := []rules.SaturationETA{}
	for _, e := range etas {
		// A model pool matches an instance filter when the instance
		// belongs to it.
		if v := q.Get("instance"); v != "" && e.Instance != v {
			in := snap.Instance(v)
			if e.Instance != "" || in == nil || in.Engine != e.Engine || in.Model != e.Model {
				continue
			}
		}
		if (q.Get("engine") != "" && e.Engine != q.Get("engine")) || (q.Get("model") != "" && e.Model != q.Get("model")) || (q.Get("resource") != "" && e.Resource != q.Get("resource")) {
			continue
		}
		out = append(out, e)
	}
	return ForecastsResponse{Time: snap.Time, Forecasts: out}, nil
}

// BottleneckPeriod is a span of time a bottleneck rule was firing.
type BottleneckPeriod struct {
	Rule     string    `json:"rule"`
	ID       string    `json:"id,omitempty"`
	Severity string    `json:"severity"`
	From     time.Time `json:"from"`
	// To is the last evaluation seen firing in the range.
	To time.Time `json:"to"`
}

// firingPeriods turns ALERTS series into spans, a gap of more than two
// steps ending one.
func firingPeriods(m promql.Matrix, step time.Duration) []BottleneckPeriod {
	out := []BottleneckPeriod{}
	for _, s := range m {
		var cur *BottleneckPeriod
		for _, p := range s.Floats {
			t := time.UnixMilli(p.T).UTC()
			if cur != nil && t.Sub(cur.To) <= 2*step {
				cur.To = t
				continue
			}
			out = append(out, BottleneckPeriod{Rule: s.Metric.Get(model.AlertNameLabel), ID: s.Metric.Get("bottleneck"), Severity: s.Metric.Get("severity"), From: t, To: t})
			cur = &out[len(out)-1]
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From.After(out[j].From) })
	return out
}

// CollectRequest is the body of POST /api/v1/metrics/collect.
type CollectRequest struct {
	Instances []string `json:"instances,omitempty"`
	Engine    string   `json:"engine,omitempty"`
	// Window overrides the rate window, as a duration such as "5m".
	Window string `json:"window,omitempty"`
}

func (a *API) collect(r *http.Request) (any, *apiError) {
	var req CollectRequest
	if apiErr := a.decode(r, &req); apiErr != nil {
		return nil, apiErr
	}
	if req.Engine != "" {
		known := false
		for _, e := range a.o.Collector.Engines() {
			known = known || e == req.Engine
		}
		if !known {
			return nil, badData("engine", "%q has no profile; known engines: %v", req.Engine, a.o.Collector.Engines())
		}
	}
	var window time.Duration
	if req.Window != "" {
		d, err := parseDuration(req.Window)
		if err != nil {
			return nil, badData("window", "%v", err)
		}
		if d <= 0 {
			return nil, badData("window", "must be greater than zero")
		}
		window = d
	}
	snap, err := a.o.Collector.Collect(r.Context(), a.o.Now(), collector.CollectOptions{
		Instances: req.Instances,
		Engine:    req.Engine,
		Window:    window,
	})
	if errors.Is(err, collector.ErrWindowTooLong) {
		return nil, badData("window", "%v", err)
	}
	if err != nil {
		return nil, &apiError{typ: ErrUnavailable, status: http.StatusServiceUnavailable, err: err}
	}
	for _, in := range req.Instances {
		if snap.Instance(in) == nil {
			return nil, notFound("instances: %q is not serving any known engine in this collection", in)
		}
	}
	snap.Instances = nonNil(snap.Instances)
	return snap, nil
}

// decode reads a JSON body, refusing unknown fields, trailing data and
// bodies over the cap. An empty body is an empty request.
func (a *API) decode(r *http.Request, v any) *apiError {
	body := http.MaxBytesReader(nil, r.Body, a.o.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			maxErr    *http.MaxBytesError
			syntaxErr *json.SyntaxError
			typeErr   *json.UnmarshalTypeError
		)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &maxErr):
			return &apiError{typ: ErrBadData, status: http.StatusRequestEntityTooLarge, err: fmt.Errorf("request body is larger than %d bytes", maxErr.Limit)}
		case errors.As(err, &syntaxErr):
			return badData("", "request body is not valid JSON at byte %d: %v", syntaxErr.Offset, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badData("", "request body is not valid JSON: it ends too early")
		case errors.As(err, &typeErr):
			return badData(typeErr.Field, "expected %s, got JSON %s", typeErr.Type, typeErr.Value)
		default:
			return badData("", "decoding request body: %v", err)
		}
	}
	if dec.More() {
		return badData("", "request body holds more than one JSON value")
	}
	return nil
}

func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a Unix timestamp nor an RFC 3339 time", s)
	}
	return t, nil
}

func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	var d config.Duration
	if err := d.UnmarshalJSON([]byte(strconv.Quote(s))); err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 15s or 1m", s)
	}
	return time.Duration(d), nil
}
