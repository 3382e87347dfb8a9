package v1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/cost"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/signals"
)

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type fakeCollector struct {
	latest  *collector.Snapshot
	lastOpt collector.CollectOptions
	err     error
	// latestCalls counts Latest.
	latestCalls atomic.Int64
	// entered, when set, receives once Collect has started, which then
	// waits for release.
	entered, release chan struct{}
}

func (f *fakeCollector) Latest() *collector.Snapshot {
	f.latestCalls.Add(1)
	return f.latest
}

func (f *fakeCollector) Collect(_ context.Context, at time.Time, o collector.CollectOptions) (*collector.Snapshot, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
		<-f.release
	}
	f.lastOpt = o
	if f.err != nil {
		return nil, f.err
	}
	if o.Window > time.Hour {
		return nil, fmt.Errorf("%w: the scrape keeps an hour", collector.ErrWindowTooLong)
	}
	snap := &collector.Snapshot{Time: at}
	for _, in := range f.latest.Instances {
		if len(o.Instances) == 0 || in.Instance == o.Instances[0] {
			snap.Instances = append(snap.Instances, in)
		}
	}
	return snap, nil
}

func (f *fakeCollector) Engines() []string { return []string{"vllm", "tgi"} }

func (f *fakeCollector) SignalExpressions() map[string]map[string][]string {
	return map[string]map[string][]string{
		"llm_requests_running": {"vllm": {"sum(vllm:num_requests_running)"}},
		"llm_custom_thing":     {"llamacpp": {"x"}},
	}
}

type fakeHistory struct {
	lastExpr   string
	start, end time.Time
	step       time.Duration
}

func (f *fakeHistory) QueryRange(_ context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	if strings.HasPrefix(expr, "ALERTS") {
		// KVTest fired for two steps, stopped, and fired again.
		at := func(n int) promql.FPoint {
			return promql.FPoint{T: start.Add(time.Duration(n) * step).UnixMilli(), F: 1}
		}
		return promql.Matrix{{
			Metric: labels.FromStrings("__name__", "ALERTS", "alertname", "KVTest", "alertstate", "firing", "bottleneck", "B1", "severity", "warning", "instance", "a:1"),
			Floats: []promql.FPoint{at(0), at(1), at(5)},
		}}, nil
	}
	f.lastExpr, f.start, f.end, f.step = expr, start, end, step
	return promql.Matrix{{
		Metric: labels.FromStrings("__name__", "llm_time_to_first_token_seconds", "instance", "a:1", "quantile", "0.95"),
		Floats: []promql.FPoint{{T: start.UnixMilli(), F: 0.25}},
	}}, nil
}

func newTestAPI(t *testing.T, opts ...func(*Options)) (http.Handler, *fakeCollector, *fakeHistory) {
	t.Helper()
	fc := &fakeCollector{latest: &collector.Snapshot{Time: now, Instances: []*collector.Instance{
		{Instance: "a:1", Engine: "vllm", Model: "m", Settings: collector.Settings{"block_size": {Value: "16", Source: "metrics"}},
			Signals: []signals.Value{{Name: "llm_requests_running", Value: 3}}},
		{Instance: "b:1", Engine: "tgi", Model: "n"},
	}}}
	fh := &fakeHistory{}
	o := Options{
		Collector:    fc,
		History:      fh,
		Health:       func() Health { return Health{Status: "ok", Mode: "embedded", Ready: true} },
		Config:       func() (string, error) { return "source:\n  prometheus:\n    basic_auth: {password: <secret>}\n", nil },
		Now:          func() time.Time { return now },
		MaxBodyBytes: 256,
		Costs: func() []cost.Instance {
			return []cost.Instance{{Instance: "a:1", Engine: "vllm", Model: "m", Accelerator: "h100", GPUs: 2, GPUsSource: cost.GPUsFromConfig, Currency: "EUR", PerHour: 8, TokensPerSecond: 100, GenerationTokensPerSecond: 100, PerMillionTokens: new(22.222222), GenerationPerMillionTokens: new(22.222222)}}
		},
		Forecasts: func(_ context.Context, at time.Time) ([]rules.SaturationETA, error) {
			if !at.Equal(now) {
				return nil, fmt.Errorf("forecasts read at %s, not at the last collection", at)
			}
			return []rules.SaturationETA{
				{Instance: "a:1", Engine: "vllm", Model: "m", Resource: "kv_cache", Seconds: 1500},
				{Instance: "b:1", Engine: "tgi", Model: "n", Resource: "queue", Seconds: 300},
				{Engine: "vllm", Model: "m", Resource: "kv_cache", Seconds: 2400},
			}, nil
		},
	}
	for _, f := range opts {
		f(&o)
	}
	api := New(o)
	r := mux.NewRouter()
	api.Register(r.PathPrefix("/api/v1").Subrouter())
	return validated(t, api, r), fc, fh
}

type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

func do(t *testing.T, r http.Handler, method, path, body string) (int, envelope) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	var env envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatalf("%s %s: body is not the JSON envelope: %v\n%s", method, path, err, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return w.Code, env
}

func TestEndpointsSucceed(t *testing.T) {
	r, fc, fh := newTestAPI(t)
	tests := []struct {
		method, path, body string
		want               []string
	}{
		{"GET", "/api/v1/health", "", []string{`"status":"ok"`, `"mode":"embedded"`}},
		{"GET", "/api/v1/config", "", []string{`<secret>`}},
		{"GET", "/api/v1/signals", "", []string{`"name":"llm_requests_running"`, `"vllm":["sum(vllm:num_requests_running)"]`, `"name":"llm_custom_thing"`, `"quantiles":true`}},
		{"GET", "/api/v1/instances", "", []string{`"instance":"a:1"`, `"instance":"b:1"`, `"block_size":{"value":"16","source":"metrics"}`}},
		{"GET", "/api/v1/instances/b:1", "", []string{`"forecasts":[{"instance":"b:1"`}},
		{"GET", "/api/v1/instances/a:1?start=1793620800&end=1793621400&step=30s", "", []string{`"name":"llm_time_to_first_token_seconds"`, `"quantile":"0.95"`, `["1793620800","0.25"]`, `"llm_requests_running"`,
			`"bottlenecks":[{"rule":"KVTest","id":"B1","severity":"warning","from":"2026-11-02T12:02:30Z","to":"2026-11-02T12:02:30Z"},{"rule":"KVTest","id":"B1","severity":"warning","from":"2026-11-02T12:00:00Z","to":"2026-11-02T12:00:30Z"}]`,
			`"forecasts":[{"instance":"a:1","engine":"vllm","model":"m","resource":"kv_cache","seconds":1500},{"engine":"vllm","model":"m","resource":"kv_cache","seconds":2400}]`,
			`"cost":{"instance":"a:1","engine":"vllm","model":"m","accelerator":"h100","gpus":2,"gpus_source":"config","currency":"EUR","per_hour":8,"generation_per_million_tokens":22.222222,"per_million_tokens":22.222222,"tokens_per_second":100,"prompt_tokens_per_second":0,"generation_tokens_per_second":100}`}},
		{"GET", "/api/v1/forecasts", "", []string{`"time":"2026-11-01T12:00:00Z"`, `"instance":"b:1"`, `"seconds":2400`}},
		// The pool of a:1 comes with it; b:1's forecast does not.
		{"GET", "/api/v1/forecasts?instance=a:1&resource=kv_cache", "", []string{`"forecasts":[{"instance":"a:1","engine":"vllm","model":"m","resource":"kv_cache","seconds":1500},{"engine":"vllm","model":"m","resource":"kv_cache","seconds":2400}]`}},
		{"GET", "/api/v1/forecasts?resource=queue", "", []string{`"forecasts":[{"instance":"b:1","engine":"tgi","model":"n","resource":"queue","seconds":300}]`}},
		{"POST", "/api/v1/metrics/collect", `{"instances":["b:1"],"engine":"tgi","window":"5m"}`, []string{`"instance":"b:1"`}},
		{"POST", "/api/v1/metrics/collect", ``, []string{`"instances"`}},
	}
	for _, tc := range tests {
		code, env := do(t, r, tc.method, tc.path, tc.body)
		if code != 200 || env.Status != "success" {
			t.Errorf("%s %s = %d %+v", tc.method, tc.path, code, env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(string(env.Data), w) {
				t.Errorf("%s %s: data lacks %s:\n%s", tc.method, tc.path, w, env.Data)
			}
		}
	}
	if fh.step != 30*time.Second || fh.end.Sub(fh.start) != 10*time.Minute || !strings.Contains(fh.lastExpr, `instance="a:1"`) {
		t.Errorf("history query = %q %s..%s step %s", fh.lastExpr, fh.start, fh.end, fh.step)
	}
	if fc.lastOpt.Engine != "" || fc.lastOpt.Window != 0 {
		t.Errorf("empty collect body gave options %+v", fc.lastOpt)
	}
	// b:1 is not priced.
	if _, env := do(t, r, "GET", "/api/v1/instances/b:1", ""); strings.Contains(string(env.Data), `"cost"`) {
		t.Errorf("an unpriced instance has a cost: %s", env.Data)
	}
}

func TestCollectPassesOptions(t *testing.T) {
	r, fc, _ := newTestAPI(t)
	if code, env := do(t, r, "POST", "/api/v1/metrics/collect", `{"instances":["a:1"],"engine":"vllm","window":"2m"}`); code != 200 {
		t.Fatalf("%d %+v", code, env)
	}
	if fc.lastOpt.Window != 2*time.Minute || fc.lastOpt.Engine != "vllm" || len(fc.lastOpt.Instances) != 1 {
		t.Errorf("options = %+v", fc.lastOpt)
	}
}

func TestBadRequests(t *testing.T) {
	r, _, _ := newTestAPI(t)
	tests := []struct {
		name, method, path, body string
		code                     int
		errType, want            string
	}{
		{"unknown instance", "GET", "/api/v1/instances/nope:1", "", 404, ErrNotFound, `instance "nope:1" is not known`},
		{"bad start", "GET", "/api/v1/instances/a:1?start=yesterday", "", 400, ErrBadData, "start:"},
		{"bad end", "GET", "/api/v1/instances/a:1?end=soon", "", 400, ErrBadData, "end:"},
		{"end before start", "GET", "/api/v1/instances/a:1?start=2000&end=1000", "", 400, ErrBadData, "end:"},
		{"bad step", "GET", "/api/v1/instances/a:1?step=fast", "", 400, ErrBadData, `step: "fast" is not a duration`},
		{"zero step", "GET", "/api/v1/instances/a:1?step=0s", "", 400, ErrBadData, "step: must be greater than zero"},
		{"too many points", "GET", "/api/v1/instances/a:1?start=0&end=1000000&step=1s", "", 400, ErrBadData, "more than 11000 points"},
		{"bad JSON", "POST", "/api/v1/metrics/collect", `{"engine":`, 400, ErrBadData, "not valid JSON"},
		{"unknown field", "POST", "/api/v1/metrics/collect", `{"engines":"vllm"}`, 400, ErrBadData, `unknown field "engines"`},
		{"wrong type", "POST", "/api/v1/metrics/collect", `{"instances":"a:1"}`, 400, ErrBadData, "instances: expected []string"},
		{"bad window", "POST", "/api/v1/metrics/collect", `{"window":"5 minutes"}`, 400, ErrBadData, "not a duration"},
		{"negative window", "POST", "/api/v1/metrics/collect", `{"window":"-5m"}`, 400, ErrBadData, "window"},
		{"window beyond the kept samples", "POST", "/api/v1/metrics/collect", `{"window":"2h"}`, 400, ErrBadData, "window: window reaches further back than the scraped samples are kept: the scrape keeps an hour"},
		{"unknown engine", "POST", "/api/v1/metrics/collect", `{"engine":"triton"}`, 400, ErrBadData, `engine: "triton" has no profile`},
		{"unknown instance in collect", "POST", "/api/v1/metrics/collect", `{"instances":["z:9"]}`, 404, ErrNotFound, `instances: "z:9" is not serving`},
		{"two values", "POST", "/api/v1/metrics/collect", `{} {}`, 400, ErrBadData, "more than one JSON value"},
		{"body too large", "POST", "/api/v1/metrics/collect", `{"instances":["` + strings.Repeat("x", 300) + `"]}`, 413, ErrBadData, "larger than 256 bytes"},
		{"bad resource", "GET", "/api/v1/forecasts?resource=gpu", "", 400, ErrBadData, `resource: "gpu" is neither kv_cache nor queue`},
		{"no such endpoint", "GET", "/api/v1/nothing", "", 404, ErrNotFound, "no API endpoint"},
		{"wrong method", "DELETE", "/api/v1/instances", "", 405, ErrBadData, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, env := do(t, r, tc.method, tc.path, tc.body)
			if code != tc.code || env.Status != "error" || env.ErrorType != tc.errType || !strings.Contains(env.Error, tc.want) {
				t.Errorf("got %d %+v, want %d %s containing %q", code, env, tc.code, tc.errType, tc.want)
			}
		})
	}
}

func TestUnavailableBeforeFirstCollection(t *testing.T) {
	r, fc, _ := newTestAPI(t)
	fc.latest = nil
	code, env := do(t, r, "GET", "/api/v1/instances", "")
	if code != 503 || env.ErrorType != ErrUnavailable {
		t.Errorf("got %d %+v", code, env)
	}
	fc.latest = &collector.Snapshot{}
	fc.err = errors.New("source down")
	code, env = do(t, r, "POST", "/api/v1/metrics/collect", "{}")
	if code != 503 || !strings.Contains(env.Error, "source down") {
		t.Errorf("collect with the source down = %d %+v", code, env)
	}
}
