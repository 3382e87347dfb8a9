package collector

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	commonconfig "github.com/prometheus/common/config"

	"github.com/optiinfra/perfagent/config"
)

func newTestRemote(t *testing.T, h http.HandlerFunc, mutate func(*config.RemoteConfig)) (*RemoteSource, *Metrics) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := config.DefaultRemoteConfig()
	cfg.URL = config.URL(srv.URL)
	if mutate != nil {
		mutate(&cfg)
	}
	m := testMetrics()
	src, err := NewRemoteSource(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	src.sleep = func(context.Context, time.Duration) error { return nil }
	return src, m
}

const vectorBody = `{"status":"success","data":{"resultType":"vector","result":[
{"metric":{"__name__":"up","instance":"a:1"},"value":[1700000000,"1"]},
{"metric":{"__name__":"up","instance":"b:1"},"value":[1700000000,"0.5"]}]}}`

func TestRemoteQueryRetriesTransientFailures(t *testing.T) {
	var calls atomic.Int32
	src, m := newTestRemote(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if got := r.FormValue("query"); got != "up" {
			t.Errorf("query = %q", got)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(vectorBody))
	}, nil)
	v, err := src.Query(context.Background(), "up", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 2 || v[1].F != 0.5 || v[1].Metric.Get("instance") != "b:1" || v[0].T != 1700000000000 {
		t.Errorf("vector = %v", v)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("calls = %d, want 3", got)
	}
	if got := testutil.ToFloat64(m.SourceQueries.WithLabelValues(OutcomeRetry)); got != 2 {
		t.Errorf("retries counted = %g, want 2", got)
	}
	if got := testutil.ToFloat64(m.SourceUp); got != 1 {
		t.Errorf("source up = %g, want 1", got)
	}
}

func TestRemoteQueryGivesUpAndReportsDown(t *testing.T) {
	var calls atomic.Int32
	src, m := newTestRemote(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}, func(c *config.RemoteConfig) { c.Retries = 2 })
	_, err := src.Query(context.Background(), "up", time.Now())
	if err == nil || !strings.Contains(err.Error(), `querying http://127.0.0.1`) || !strings.Contains(err.Error(), `"up"`) {
		t.Fatalf("error = %v, want one naming the config.URL and the query", err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("calls = %d, want 1 + 2 retries", got)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("error %v does not match ErrUnavailable", err)
	}
	if got := testutil.ToFloat64(m.SourceUp); got != 0 {
		t.Errorf("source up = %g, want 0", got)
	}
	if got := testutil.ToFloat64(m.SourceQueries.WithLabelValues(OutcomeError)); got != 1 {
		t.Errorf("errors counted = %g, want 1", got)
	}
}

func TestRemoteQueryDoesNotRetryBadQueries(t *testing.T) {
	var calls atomic.Int32
	src, m := newTestRemote(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`))
	}, nil)
	m.SourceUp.Set(1)
	_, err := src.Query(context.Background(), "sum(", time.Now())
	if err == nil {
		t.Fatal("no error")
	}
	if errors.Is(err, ErrUnavailable) {
		t.Errorf("a bad query's error %v matches ErrUnavailable", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("calls = %d, want 1", got)
	}
	if got := testutil.ToFloat64(m.SourceUp); got != 1 {
		t.Error("a bad query marked the source down")
	}
}

func TestRemoteQueryRangeAndAuth(t *testing.T) {
	src, _ := newTestRemote(t, func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "agent" || p != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v1/query_range" || r.FormValue("step") != "15" {
			t.Errorf("request %s step=%s", r.URL.Path, r.FormValue("step"))
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[
{"metric":{"instance":"a:1"},"values":[[1700000000,"1"],[1700000015,"2"]]}]}}`))
	}, func(c *config.RemoteConfig) {
		c.HTTPClientConfig.BasicAuth = &commonconfig.BasicAuth{Username: "agent", Password: "s3cret"}
	})
	start := time.Unix(1700000000, 0)
	m, err := src.QueryRange(context.Background(), "x", start, start.Add(15*time.Second), 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].Floats) != 2 || m[0].Floats[1].F != 2 || m[0].Floats[1].T != 1700000015000 {
		t.Errorf("matrix = %v", m)
	}
}

// follow_redirects is honoured as in Prometheus: a query API moved behind
// a redirect is followed by default and refused when it is off.
func TestRemoteQueryFollowsRedirectsAsConfigured(t *testing.T) {
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("query") != "up" {
			t.Errorf("query = %q after the redirect", r.FormValue("query"))
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(vectorBody))
	}))
	defer moved.Close()
	redirect := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, moved.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}
	for _, follow := range []bool{true, false} {
		src, _ := newTestRemote(t, redirect, func(c *config.RemoteConfig) {
			c.HTTPClientConfig.FollowRedirects = follow
			c.Retries = 0
		})
		v, err := src.Query(context.Background(), "up", time.Unix(1700000000, 0))
		switch {
		case follow && (err != nil || len(v) != 2):
			t.Errorf("following redirects: %v, %v", v, err)
		case !follow && (err == nil || !strings.Contains(err.Error(), "307")):
			t.Errorf("not following redirects: got %v, %v; want an error naming the 307", v, err)
		}
	}
}
