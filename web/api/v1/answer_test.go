package v1

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/rules"
)

// fleet is n instances named i-000.., every third a tgi, the rest vllm.
func fleet(n int) []*collector.Instance {
	out := make([]*collector.Instance, n)
	for i := range out {
		engine := "vllm"
		if i%3 == 2 {
			engine = "tgi"
		}
		out[i] = &collector.Instance{Instance: fmt.Sprintf("i-%03d:80", i), Engine: engine, Model: "m"}
	}
	return out
}

// instancePage is the data of a GET /api/v1/instances answer.
type instancePage struct {
	Instances []struct {
		Instance string `json:"instance"`
		Engine   string `json:"engine"`
	} `json:"instances"`
	NextPageToken *string `json:"next_page_token"`
}

func getPage(t *testing.T, r http.Handler, path string) (int, envelope, instancePage) {
	t.Helper()
	code, env := do(t, r, "GET", path, "")
	var p instancePage
	if code == 200 {
		if err := json.Unmarshal(env.Data, &p); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return code, env, p
}

func TestInstancesPaginated(t *testing.T) {
	r, fc, _ := newTestAPI(t)
	fc.latest.Instances = fleet(250)

	_, _, p := getPage(t, r, "/api/v1/instances")
	if len(p.Instances) != DefaultLimit || p.NextPageToken == nil || p.Instances[0].Instance != "i-000:80" {
		t.Fatalf("default page: %d instances, next %v; want the first %d and a next page", len(p.Instances), p.NextPageToken, DefaultLimit)
	}

	// Walking the pages sees every instance once, in order.
	var seen []string
	path := "/api/v1/instances?limit=40"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("more than 10 pages of 40 for 250 instances")
		}
		code, env, p := getPage(t, r, path)
		if code != 200 {
			t.Fatalf("GET %s = %d %+v", path, code, env)
		}
		for _, in := range p.Instances {
			seen = append(seen, in.Instance)
		}
		if p.NextPageToken == nil {
			if len(p.Instances) != 250%40 {
				t.Errorf("last page has %d instances, want %d", len(p.Instances), 250%40)
			}
			break
		}
		path = "/api/v1/instances?limit=40&page_token=" + *p.NextPageToken
	}
	if len(seen) != 250 {
		t.Fatalf("pages gave %d instances, want 250", len(seen))
	}
	for i, in := range seen {
		if want := fmt.Sprintf("i-%03d:80", i); in != want {
			t.Fatalf("instance %d is %s, want %s", i, in, want)
		}
	}

	if _, _, p := getPage(t, r, "/api/v1/instances?limit=0"); len(p.Instances) != 250 || p.NextPageToken != nil {
		t.Errorf("limit=0: %d instances, next %v; want all 250 and no next page", len(p.Instances), p.NextPageToken)
	}
	_, _, p = getPage(t, r, "/api/v1/instances?engine=tgi&limit=0")
	if len(p.Instances) != 83 {
		t.Errorf("engine=tgi: %d instances, want 83", len(p.Instances))
	}
	for _, in := range p.Instances {
		if in.Engine != "tgi" {
			t.Errorf("engine=tgi answered %s of %s", in.Instance, in.Engine)
		}
	}
	if _, _, p := getPage(t, r, "/api/v1/instances?model=other"); len(p.Instances) != 0 || p.NextPageToken != nil {
		t.Errorf("model=other: %+v, want no instances", p)
	}
}

func TestPaginationRefusesBadParameters(t *testing.T) {
	r, _, _ := newTestAPI(t, func(o *Options) { o.Rules = rules.NewManager(rules.ManagerOptions{}) })
	for _, path := range []string{"/api/v1/instances", "/api/v1/bottlenecks"} {
		for _, tc := range []struct{ query, field string }{
			{"limit=-1", "limit"},
			{"limit=ten", "limit"},
			{"page_token=12", "page_token"},
			{"page_token=" + "bzEy" + "!", "page_token"},
		} {
			code, env := do(t, r, "GET", path+"?"+tc.query, "")
			if code != 400 || env.ErrorType != ErrBadData || !strings.HasPrefix(env.Error, tc.field+":") {
				t.Errorf("GET %s?%s = %d %+v, want 400 naming %s", path, tc.query, code, env, tc.field)
			}
		}
	}
}

// rawAPI is the API without the OpenAPI checks of newTestAPI, for what
// they cannot read: gzipped answers, answers raced against each other.
func rawAPI(o Options) http.Handler {
	if o.History == nil {
		o.History = &fakeHistory{}
	}
	r := mux.NewRouter()
	New(o).Register(r.PathPrefix("/api/v1").Subrouter())
	return r
}

func get(r http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestAnswersGzippedWhenAccepted(t *testing.T) {
	fc := &fakeCollector{latest: &collector.Snapshot{Time: now, Instances: fleet(50)}}
	var gen atomic.Uint64
	for _, generation := range []func() uint64{nil, gen.Load} {
		r := rawAPI(Options{Collector: fc, Generation: generation, Health: func() Health { return Health{Status: "ok"} }})
		plain := get(r, "/api/v1/instances")
		if plain.Code != 200 || plain.Header().Get("Content-Encoding") != "" || plain.Header().Get("Vary") != "Accept-Encoding" {
			t.Fatalf("without Accept-Encoding: %d, Content-Encoding %q, Vary %q", plain.Code, plain.Header().Get("Content-Encoding"), plain.Header().Get("Vary"))
		}
		if got := plain.Header().Get("Content-Length"); got != fmt.Sprint(plain.Body.Len()) {
			t.Errorf("Content-Length %s for %d bytes", got, plain.Body.Len())
		}
		for range 2 {
			zipped := get(r, "/api/v1/instances", "Accept-Encoding", "br, gzip")
			if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Body.Len() >= plain.Body.Len() {
				t.Fatalf("Accept-Encoding gzip: Content-Encoding %q, %d bytes for %d plain", zipped.Header().Get("Content-Encoding"), zipped.Body.Len(), plain.Body.Len())
			}
			zr, err := gzip.NewReader(zipped.Body)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(body, plain.Body.Bytes()) {
				t.Errorf("gunzipped answer differs from the plain one (%v)", err)
			}
		}
		if w := get(r, "/api/v1/instances", "Accept-Encoding", "gzip;q=0"); w.Header().Get("Content-Encoding") != "" {
			t.Error("gzipped although the client refused it with q=0")
		}
		// A small answer is not worth compressing.
		if w := get(r, "/api/v1/health", "Accept-Encoding", "gzip"); w.Code != 200 || w.Header().Get("Content-Encoding") != "" {
			t.Errorf("health (%d bytes) gzipped: %q", w.Body.Len(), w.Header().Get("Content-Encoding"))
		}
	}
}

func TestReadAnswersBuiltOncePerGeneration(t *testing.T) {
	fc := &fakeCollector{latest: &collector.Snapshot{Time: now, Instances: fleet(3)}}
	var gen atomic.Uint64
	r := rawAPI(Options{Collector: fc, Generation: gen.Load})
	first := get(r, "/api/v1/instances").Body.String()
	for range 5 {
		if w := get(r, "/api/v1/instances", "Accept-Encoding", "gzip"); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		// Parameters the route does not read make no answer of their own.
		get(r, "/api/v1/instances?ignored=1")
	}
	if n := fc.latestCalls.Load(); n != 1 {
		t.Errorf("six requests in one generation read the snapshot %d times, want once", n)
	}
	// Another page is another answer.
	get(r, "/api/v1/instances?limit=1")
	if n := fc.latestCalls.Load(); n != 2 {
		t.Errorf("a second page read the snapshot %d times in all, want 2", n)
	}

	// The next cycle's snapshot is served once the generation changes,
	// not before.
	fc.latest = &collector.Snapshot{Time: now, Instances: fleet(4)}
	if got := get(r, "/api/v1/instances").Body.String(); got != first {
		t.Errorf("answer changed within a generation:\n%s\n%s", first, got)
	}
	gen.Add(1)
	_, _, p := getPage(t, r, "/api/v1/instances")
	if len(p.Instances) != 4 {
		t.Errorf("after the generation changed: %d instances, want 4", len(p.Instances))
	}
}

func TestExpensiveRequestsBounded(t *testing.T) {
	r, fc, _ := newTestAPI(t, func(o *Options) { o.MaxExpensive = 1 })
	fc.entered, fc.release = make(chan struct{}), make(chan struct{})
	done := make(chan int)
	go func() {
		req := httptest.NewRequest("POST", "/api/v1/metrics/collect", strings.NewReader("{}"))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		done <- w.Code
	}()
	<-fc.entered

	req := httptest.NewRequest("POST", "/api/v1/metrics/collect", strings.NewReader("{}"))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	var env envelope
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusTooManyRequests || env.ErrorType != ErrTooManyRequests || !strings.Contains(env.Error, "retry in 5 seconds") || w.Header().Get("Retry-After") != "5" {
		t.Errorf("a second collection while one runs = %d, Retry-After %q, %+v; want 429 with Retry-After 5", w.Code, w.Header().Get("Retry-After"), env)
	}
	// Reads are not expensive requests.
	if code, env := do(t, r, "GET", "/api/v1/instances", ""); code != 200 {
		t.Errorf("GET /instances while a collection runs = %d %+v", code, env)
	}
	close(fc.release)
	if code := <-done; code != 200 {
		t.Errorf("the first collection = %d", code)
	}
	fc.entered = nil
	if code, env := do(t, r, "POST", "/api/v1/metrics/collect", "{}"); code != 200 {
		t.Errorf("a collection after the first ended = %d %+v", code, env)
	}
}

func targetHealths() []collector.TargetHealth {
	return []collector.TargetHealth{
		{URL: "http://a:1/metrics", Instance: "a:1", Health: "up"},
		{URL: "http://b:1/metrics", Instance: "b:1", Health: "down", LastError: "connection refused"},
		{URL: "http://c:1/metrics", Instance: "c:1", Health: "unknown"},
		{URL: "http://d:1/metrics", Instance: "d:1", Health: "down"},
	}
}

func TestHealthSummarizesTargets(t *testing.T) {
	r, _, _ := newTestAPI(t, func(o *Options) { o.Targets = targetHealths })
	code, env := do(t, r, "GET", "/api/v1/health", "")
	if code != 200 {
		t.Fatalf("%d %+v", code, env)
	}
	var h Health
	if err := json.Unmarshal(env.Data, &h); err != nil {
		t.Fatal(err)
	}
	want := TargetsSummary{TargetCounts: TargetCounts{Total: 4, Up: 1, Down: 2, Unknown: 1}, Engines: map[string]TargetCounts{
		"vllm":    {Total: 1, Up: 1},
		"tgi":     {Total: 1, Down: 1},
		"unknown": {Total: 2, Down: 1, Unknown: 1},
	}}
	if h.Targets == nil || fmt.Sprint(*h.Targets) != fmt.Sprint(want) {
		t.Errorf("health targets = %+v, want %+v", h.Targets, want)
	}
	if strings.Contains(string(env.Data), "connection refused") {
		t.Error("health lists the targets")
	}
	// Without a scraper (remote mode) there are no targets at all.
	r, _, _ = newTestAPI(t)
	if _, env := do(t, r, "GET", "/api/v1/health", ""); strings.Contains(string(env.Data), `"targets"`) {
		t.Errorf("health in remote mode has targets: %s", env.Data)
	}
	if code, _ := do(t, r, "GET", "/api/v1/targets", ""); code != 404 {
		t.Errorf("GET /targets in remote mode = %d, want 404", code)
	}
}

func TestTargetsListed(t *testing.T) {
	r, _, _ := newTestAPI(t, func(o *Options) { o.Targets = targetHealths })
	for _, tc := range []struct {
		query string
		want  []string
		next  bool
	}{
		{"", []string{"a:1/vllm/up", "b:1/tgi/down", "c:1/unknown/unknown", "d:1/unknown/down"}, false},
		{"?health=down", []string{"b:1/tgi/down", "d:1/unknown/down"}, false},
		{"?engine=unknown&limit=1", []string{"c:1/unknown/unknown"}, true},
		{"?limit=2&page_token=bzI", []string{"c:1/unknown/unknown", "d:1/unknown/down"}, false},
	} {
		code, env := do(t, r, "GET", "/api/v1/targets"+tc.query, "")
		if code != 200 {
			t.Fatalf("%s: %d %+v", tc.query, code, env)
		}
		var resp TargetsResponse
		if err := json.Unmarshal(env.Data, &resp); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tg := range resp.Targets {
			got = append(got, tg.Instance+"/"+tg.Engine+"/"+tg.Health)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || (resp.NextPageToken != "") != tc.next {
			t.Errorf("GET /targets%s = %v next %q, want %v (next page: %v)", tc.query, got, resp.NextPageToken, tc.want, tc.next)
		}
	}
}

// TestCachedAnswersAreTheFreshOnes: every read endpoint answers from the
// per-generation cache with the bytes an API without the cache builds
// from the same state, filters, pages and errors included, and a second
// request is served the first one's answer.
func TestCachedAnswersAreTheFreshOnes(t *testing.T) {
	o, pipe := pipelineOptions(t)
	o.Health = func() Health { return Health{Status: "ok", Instances: 2} }
	o.Targets = targetHealths
	fresh := rawAPI(o)
	o.Generation = pipe.Generation
	cached := rawAPI(o)
	for _, path := range []string{
		"/api/v1/health",
		"/api/v1/signals",
		"/api/v1/instances",
		"/api/v1/instances?engine=vllm&limit=1",
		"/api/v1/instances/a:1",
		"/api/v1/instances/b:1?start=" + fmt.Sprint(now.Add(-2*time.Minute).Unix()) + "&end=" + fmt.Sprint(now.Unix()) + "&step=30s",
		"/api/v1/instances/nope:1",
		"/api/v1/instances/a:1?step=0",
		"/api/v1/targets?health=down",
		"/api/v1/forecasts",
		"/api/v1/forecasts?instance=a:1",
		"/api/v1/bottlenecks?instance=a:1",
		"/api/v1/bottlenecks?limit=1",
		"/api/v1/rules",
		"/api/v1/recommendations",
		"/api/v1/recommendations?instance=b:1",
	} {
		want := get(fresh, path)
		for i := range 2 {
			got := get(cached, path)
			if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Errorf("GET %s, request %d: cached answer differs from the fresh one:\n%d %s\n%d %s", path, i+1, got.Code, got.Body, want.Code, want.Body)
			}
		}
	}
}
