package prom

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/signalstore"
)

// queryServer serves the query API over a store holding, one sample a
// second for a minute before t0: two series of llm_requests_waiting (no
// job, as the agent records signals), an SLO target (no job, no
// instance), and a raw series scraped by another job.
func queryServer(t *testing.T, t0 time.Time) *httptest.Server {
	t.Helper()
	store, err := signalstore.Open(signalstore.Options{Path: t.TempDir(), Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	app := store.Appender(context.Background())
	for i := range 60 {
		at := t0.Add(time.Duration(i-59) * time.Second).UnixMilli()
		for _, l := range []labels.Labels{
			labels.FromStrings("__name__", "llm_requests_waiting", "instance", "a:8000", "engine", "vllm"),
			labels.FromStrings("__name__", "llm_requests_waiting", "instance", "b:8000", "engine", "vllm"),
			labels.FromStrings("__name__", "perfagent_slo_ttft_p95_seconds", "model", "m"),
			labels.FromStrings("__name__", "vllm:num_requests_waiting", "instance", "a:8000", "job", "other"),
		} {
			if _, err := app.Append(0, l, at, float64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	Register(r.PathPrefix("/api/v1").Subrouter(), Options{Queryable: store.DB(), Engine: store.Engine(), LookbackDelta: signalstore.LookbackDelta, Version: "1.2.3",
		Target: labels.FromStrings("job", "perfagent", "instance", "agent:8002")})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func TestQueryAPI(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	srv := queryServer(t, t0)
	at := func(d time.Duration) string { return t0.Add(d).UTC().Format(time.RFC3339) }
	for _, tc := range []struct {
		name, method, path string
		form               url.Values
		want               []string // substrings of the answer
		code               int
	}{
		{"instant query", http.MethodGet, "/api/v1/query", url.Values{"query": {`sum(llm_requests_waiting)`}, "time": {at(0)}},
			[]string{`"resultType":"vector"`, `"118"`}, 200},
		{"instant query by POST", http.MethodPost, "/api/v1/query", url.Values{"query": {`llm_requests_waiting{instance="a:8000"}`}, "time": {"1800000000"}},
			[]string{`"instance":"a:8000"`, `"59"`}, 200},
		{"range query", http.MethodGet, "/api/v1/query_range", url.Values{"query": {`llm_requests_waiting{instance="b:8000"}`}, "start": {at(-10 * time.Second)}, "end": {at(0)}, "step": {"5"}},
			[]string{`"resultType":"matrix"`, `[1799999990,"49"]`, `[1799999995,"54"]`, `[1800000000,"59"]`}, 200},
		{"series", http.MethodGet, "/api/v1/series", url.Values{"match[]": {`llm_requests_waiting`}, "start": {at(-time.Minute)}, "end": {at(0)}},
			[]string{`"instance":"a:8000"`, `"instance":"b:8000"`}, 200},
		{"label names", http.MethodGet, "/api/v1/labels", nil, []string{`["__name__","engine","instance","job","model"]`}, 200},
		{"label values", http.MethodGet, "/api/v1/label/instance/values", nil, []string{`["a:8000","agent:8002","b:8000"]`}, 200},
		{"label values of a matched series", http.MethodGet, "/api/v1/label/instance/values", url.Values{"match[]": {"llm_requests_waiting"}}, []string{`["a:8000","b:8000"]`}, 200},
		{"jobs", http.MethodGet, "/api/v1/label/job/values", nil, []string{`["other","perfagent"]`}, 200},
		{"signals by the agent's job", http.MethodGet, "/api/v1/query", url.Values{"query": {`count(llm_requests_waiting{job="perfagent"})`}, "time": {at(0)}},
			[]string{`"value":[1800000000,"2"]`}, 200},
		{"a series's own job", http.MethodGet, "/api/v1/query", url.Values{"query": {`count({job=~"perfagent|other", instance="a:8000"}) by (job)`}, "time": {at(0)}},
			[]string{`{"job":"other"}`, `{"job":"perfagent"}`}, 200},
		{"the agent's instance where a series has none", http.MethodGet, "/api/v1/series", url.Values{"match[]": {`{instance="agent:8002"}`}},
			[]string{`[{"__name__":"perfagent_slo_ttft_p95_seconds","instance":"agent:8002","job":"perfagent","model":"m"}]`}, 200},
		{"labels of a job", http.MethodGet, "/api/v1/labels", url.Values{"match[]": {`{job="other"}`}}, []string{`["__name__","instance","job"]`}, 200},
		{"build information", http.MethodGet, "/api/v1/status/buildinfo", nil, []string{`"version":"1.2.3"`}, 200},
		{"a query that does not parse", http.MethodGet, "/api/v1/query", url.Values{"query": {`sum(`}}, []string{`"errorType":"bad_data"`}, 400},
		{"a range without a step", http.MethodGet, "/api/v1/query_range", url.Values{"query": {`up`}, "start": {"1"}, "end": {"2"}}, []string{`"errorType":"bad_data"`}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var err error
			if tc.method == http.MethodPost {
				resp, err = http.PostForm(srv.URL+tc.path, tc.form)
			} else {
				resp, err = http.Get(srv.URL + tc.path + "?" + tc.form.Encode())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.code)
			}
			if !json.Valid(b) {
				t.Fatalf("not JSON: %s", b)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("answer lacks %s: %s", w, b)
				}
			}
		})
	}
}

// The agent's own routes under /api/v1 and Prometheus's administrative
// ones are not served.
func TestOnlyQueryEndpoints(t *testing.T) {
	srv := queryServer(t, time.Unix(1_800_000_000, 0))
	for _, path := range []string{"/api/v1/rules", "/api/v1/targets", "/api/v1/status/config", "/api/v1/admin/tsdb/snapshot", "/api/v1/write"} {
		resp, err := http.Post(srv.URL+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want it not served", path, resp.StatusCode)
		}
	}
}
