package promapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// serve answers every request with status and body, and records the
// requests' methods, paths and arguments.
func serve(t *testing.T, status int, body string) (*Client, *[]string) {
	t.Helper()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parsing the request's form: %v", err)
		}
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Form.Encode())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL+"/prefix", http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	return c, &seen
}

func TestQueryDecodesAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       promql.Vector
	}{
		{
			"a vector, labels out of order and escaped, special values",
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"model":"m\"1\\\\","instance":"a:1","__name__":"x","e":"\u00e9"},"value":[1700000000.123,"1.5"]},` +
				`{"metric":{"instance":"b:1"},"value":[1700000000,"NaN"]},` +
				`{"metric":{"instance":"c:1"},"value":[1700000000.5,"+Inf"]},` +
				`{"metric":{"instance":"d:1","empty":""},"value":[1700000000,"-Inf"]}]},"warnings":["w"],"infos":[]}`,
			promql.Vector{
				{Metric: labels.FromStrings("__name__", "x", "e", "é", "instance", "a:1", "model", `m"1\\`), T: 1700000000123, F: 1.5},
				{Metric: labels.FromStrings("instance", "b:1"), T: 1700000000000, F: math.NaN()},
				{Metric: labels.FromStrings("instance", "c:1"), T: 1700000000500, F: math.Inf(1)},
				{Metric: labels.FromStrings("instance", "d:1"), T: 1700000000000, F: math.Inf(-1)},
			},
		},
		{
			"native histograms other than with custom buckets are left out",
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"instance":"a:1"},"histogram":[1700000000,{"count":"3","sum":"3","buckets":[[3,"-0.001","0.001","1"],[0,"1","2","2"]]}]},` +
				`{"metric":{"instance":"b:1"},"value":[1700000000,"2"]}]}}`,
			promql.Vector{{Metric: labels.FromStrings("instance", "b:1"), T: 1700000000000, F: 2}},
		},
		{
			"the result type after the result, and an empty result",
			`{"data":{"result":[],"resultType":"vector"},"status":"success"}`,
			nil,
		},
		{
			"a scalar",
			`{"status":"success","data":{"resultType":"scalar","result":[1700000000.001,"42"]}}`,
			promql.Vector{{Metric: labels.EmptyLabels(), T: 1700000000001, F: 42}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := serve(t, http.StatusOK, tc.body)
			got, err := c.Query(context.Background(), "x", time.Unix(1700000000, 0), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d samples, want %d: %v", len(got), len(tc.want), got)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if !labels.Equal(g.Metric, w.Metric) || g.T != w.T || !sameFloat(g.F, w.F) || g.H != nil {
					t.Errorf("sample %d: got %v, want %v", i, g, w)
				}
			}
		})
	}
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func TestQueryRangeDecodesMatrix(t *testing.T) {
	c, seen := serve(t, http.StatusOK, `{"status":"success","data":{"resultType":"matrix","result":[`+
		`{"metric":{"instance":"a:1"},"values":[[1700000000,"1"],[1700000015,"2"]]},`+
		`{"metric":{"instance":"b:1"},"histograms":[[1700000000,{"count":"1","sum":"1","buckets":[[0,"-Inf","0.5","1"]]}]]}]}}`)
	got, err := c.QueryRange(context.Background(), "rate(x[1m])", time.Unix(1700000000, 0), time.Unix(1700000015, 0), 15*time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := promql.Matrix{
		{Metric: labels.FromStrings("instance", "a:1"), Floats: []promql.FPoint{{T: 1700000000000, F: 1}, {T: 1700000015000, F: 2}}},
		{Metric: labels.FromStrings("instance", "b:1"), Floats: []promql.FPoint{}, Histograms: []promql.HPoint{{T: 1700000000000, H: &histogram.FloatHistogram{
			Schema: histogram.CustomBucketsSchema, Count: 1, Sum: 1, CustomValues: []float64{0.5},
			PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []float64{1},
		}}}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	wantReq := "POST /prefix/api/v1/query_range " + url.Values{
		"query": {"rate(x[1m])"}, "start": {"1700000000"}, "end": {"1700000015"}, "step": {"15"}, "timeout": {"60"},
	}.Encode()
	if len(*seen) != 1 || (*seen)[0] != wantReq {
		t.Errorf("requests %q, want %q", *seen, wantReq)
	}
}

func TestQueryRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		range_ bool
		want   ErrorType
		msg    string
	}{
		{"a bad query", http.StatusBadRequest, `{"status":"error","errorType":"bad_data","error":"parse error at char 5"}`, false, ErrBadData, "bad_data: parse error at char 5"},
		{"an evaluation timeout", http.StatusServiceUnavailable, `{"status":"error","errorType":"timeout","error":"query timed out"}`, false, ErrServer, "server_error: HTTP status 503 Service Unavailable"},
		{"a proxy's page", http.StatusBadGateway, `<html>bad gateway</html>`, false, ErrServer, "server_error: HTTP status 502 Bad Gateway"},
		{"not found", http.StatusNotFound, `404 page not found`, false, ErrClient, "client_error: HTTP status 404 Not Found"},
		{"not JSON", http.StatusOK, `<html></html>`, false, ErrBadResponse, "bad_response: "},
		{"cut short", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"1"]}`, false, ErrBadResponse, "bad_response: "},
		{"cut short in a string", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b`, false, ErrBadResponse, "end of input"},
		{"a label twice", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1","a":"2"},"value":[1,"1"]}]}}`, false, ErrBadResponse, `label "a" twice`},
		{"a value that is not a number", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"one"]}]}}`, false, ErrBadResponse, `"one" is not a number`},
		{"success with a bad request's status", http.StatusBadRequest, `{"status":"success","data":{"resultType":"vector","result":[]}}`, false, ErrBadResponse, "a successful answer with HTTP status 400"},
		{"success without data", http.StatusOK, `{"status":"success"}`, false, ErrBadResponse, "without data"},
		{"an unknown status", http.StatusOK, `{"status":"maybe","data":{"resultType":"vector","result":[]}}`, false, ErrBadResponse, `unknown status "maybe"`},
		{"a matrix for an instant query", http.StatusOK, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, false, ErrBadResponse, `expected an instant vector, got "matrix"`},
		{"a string", http.StatusOK, `{"status":"success","data":{"resultType":"string","result":[1,"text"]}}`, false, ErrBadResponse, `expected an instant vector, got "string"`},
		{"a vector for a range query", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[]}}`, true, ErrBadResponse, `expected a range vector, got "vector"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := serve(t, tc.status, tc.body)
			var err error
			if tc.range_ {
				_, err = c.QueryRange(context.Background(), "x", time.Unix(1, 0), time.Unix(2, 0), time.Second, 0)
			} else {
				_, err = c.Query(context.Background(), "x", time.Unix(1, 0), 0)
			}
			var apiErr *Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if apiErr.Type != tc.want || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v (type %s), want type %s and %q", err, apiErr.Type, tc.want, tc.msg)
			}
		})
	}
}

// A server that takes only GET (a proxy in front of the API, say) is
// asked again with GET.
func TestQueryFallsBackToGet(t *testing.T) {
	var methods []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if q := r.URL.Query().Get("query"); q != `up{job="a"}` {
			t.Errorf("query %q", q)
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}`))
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Query(context.Background(), `up{job="a"}`, time.Time{}, 0)
	if err != nil || len(v) != 1 {
		t.Fatalf("got %v, %v", v, err)
	}
	if strings.Join(methods, " ") != "POST GET" {
		t.Errorf("methods %v, want POST then GET", methods)
	}
}

func TestNewClientRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"prometheus:9090", "ftp://a", "http://a b"} {
		if _, err := NewClient(u, http.DefaultClient); err == nil {
			t.Errorf("%q: no error", u)
		}
	}
}
