package scraper

import (
	"cmp"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
)

func TestAppendKept(t *testing.T) {
	page := strings.Join([]string{
		"# HELP kept_total Kept.",
		"# TYPE kept_total counter",
		`kept_total{a="1"} 1`,
		"# TYPE dropped gauge",
		"dropped 2",
		"",
		"# TYPE lat_seconds histogram",
		`lat_seconds_bucket{le="1"} 3`,
		`lat_seconds_bucket{le="+Inf"} 4`,
		"lat_seconds_sum 5",
		"lat_seconds_count 4",
		"# TYPE other_seconds histogram",
		`other_seconds_bucket{le="+Inf"} 1`,
		"other_seconds_count 1",
		`{"quoted.name"} 6`,
		"# a comment",
		"kept_total_extra 7\r",
		"# EOF",
		"kept_total 8",
	}, "\n")
	for _, tc := range []struct {
		name, keep string
		want       []string
	}{
		{
			name: "native histograms: the family's name",
			keep: "kept_total|lat_seconds",
			want: []string{"# TYPE kept_total counter", `kept_total{a="1"} 1`, "# TYPE lat_seconds histogram", `lat_seconds_bucket{le="1"} 3`, `lat_seconds_bucket{le="+Inf"} 4`, "lat_seconds_sum 5", "lat_seconds_count 4", `{"quoted.name"} 6`, "# EOF", "kept_total 8"},
		},
		{
			name: "classic histograms: the bucket's name",
			keep: "lat_seconds_bucket",
			want: []string{"# TYPE lat_seconds histogram", `lat_seconds_bucket{le="1"} 3`, `lat_seconds_bucket{le="+Inf"} 4`, `{"quoted.name"} 6`, "# EOF"},
		},
		{
			name: "a regular expression",
			keep: "kept_.*",
			want: []string{"# TYPE kept_total counter", `kept_total{a="1"} 1`, `{"quoted.name"} 6`, "kept_total_extra 7\r", "# EOF", "kept_total 8"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFamilyFilter(regexp.MustCompile("^(?:" + tc.keep + ")$"))
			// Twice: the second time from the remembered decisions.
			for range 2 {
				got, samples := f.appendKept(nil, []byte(page))
				if want := strings.Join(tc.want, "\n") + "\n"; string(got) != want {
					t.Errorf("kept:\n%s\nwant:\n%s", got, want)
				}
				if samples != 11 {
					t.Errorf("%d sample lines counted, want 11", samples)
				}
			}
		})
	}
	t.Run("no filter", func(t *testing.T) {
		var f *familyFilter
		got, _ := f.appendKept(nil, []byte(page))
		if want := strings.ReplaceAll(page, "\n\n", "\n") + "\n"; string(got) != want {
			t.Errorf("kept:\n%s\nwant the page without blank lines:\n%s", got, want)
		}
	})
}

func TestFilterForgetsNoMoreThanItMayRemember(t *testing.T) {
	f := newFamilyFilter(regexp.MustCompile("^kept$"))
	var page strings.Builder
	for i := range maxCachedNames + 100 {
		fmt.Fprintf(&page, "invented_%d 1\n", i)
	}
	page.WriteString("kept 1\n")
	got, _ := f.appendKept(nil, []byte(page.String()))
	if string(got) != "kept 1\n" {
		t.Errorf("kept %q", got)
	}
	if n := len(f.samples); n > maxCachedNames {
		t.Errorf("%d names remembered, at most %d allowed", n, maxCachedNames)
	}
}

// sample is one appended sample, as the tests compare them.
type sample struct {
	labels string
	t      int64
	value  string
}

func (s sample) String() string { return fmt.Sprintf("%s @%d = %s", s.labels, s.t, s.value) }

// captured records what is committed to it.
type captured struct {
	mtx       sync.Mutex
	committed []sample
}

func (c *captured) AppenderV2(context.Context) storage.AppenderV2 { return &captureAppender{c: c} }

func (c *captured) take() []sample {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	out := c.committed
	c.committed = nil
	return out
}

type captureAppender struct {
	c       *captured
	pending []sample
}

func (a *captureAppender) Append(ref storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	s := sample{labels: ls.String(), t: t}
	switch {
	case h != nil:
		s.value = h.String()
	case fh != nil:
		s.value = fh.String()
	case value.IsStaleNaN(v):
		s.value = "stale"
	default:
		s.value = fmt.Sprint(v)
	}
	a.pending = append(a.pending, s)
	return storage.SeriesRef(labels.StableHash(ls)), nil
}

func (a *captureAppender) Commit() error {
	a.c.mtx.Lock()
	defer a.c.mtx.Unlock()
	a.c.committed = append(a.c.committed, a.pending...)
	a.pending = nil
	return nil
}

func (a *captureAppender) Rollback() error {
	a.pending = nil
	return nil
}

// page serves a text exposition the test changes.
type page struct {
	mtx    sync.Mutex
	body   string
	status int
}

func (p *page) set(status int, body string) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	p.status, p.body = status, body
}

func (p *page) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.WriteHeader(p.status)
	_, _ = w.Write([]byte(p.body))
}

func newTarget(t *testing.T, h http.Handler) Target {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return Target{URL: srv.URL + "/metrics", Labels: labels.FromStrings(model.InstanceLabel, u.Host, model.JobLabel, "test")}
}

// onlyLoop is the scraper's loop of its one target.
func onlyLoop(t testing.TB, s *Scraper) *loop {
	t.Helper()
	if len(s.loops) != 1 {
		t.Fatalf("%d loops, want 1", len(s.loops))
	}
	for _, l := range s.loops {
		return l
	}
	return nil
}

// values are the samples of the series named name, without the target's
// labels, as "labels=value".
func values(samples []sample, names ...string) []string {
	var out []string
	for _, s := range samples {
		for _, n := range names {
			if strings.HasPrefix(s.labels, `{__name__="`+n+`"`) {
				out = append(out, strings.Split(s.labels, ", instance=")[0]+"="+s.value)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestStaleness(t *testing.T) {
	pg := &page{}
	target := newTarget(t, pg)
	app := &captured{}
	s, err := New(app, nil, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(Config{Interval: time.Hour, Timeout: 5 * time.Second, Keep: "a|b"}, []Target{target}); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); len(h) != 1 || h[0].Health != HealthUnknown {
		t.Fatalf("health before a scrape: %+v", h)
	}
	l := onlyLoop(t, s)
	ctx := context.Background()
	at := time.Unix(1000, 0)
	steps := []struct {
		status     int
		body       string
		want       []string
		up, health string
	}{
		{200, "a 1\nb 2\nc 3\n", []string{`{__name__="a"=1`, `{__name__="b"=2`}, "1", HealthGood},
		{200, "a 3\n", []string{`{__name__="a"=3`, `{__name__="b"=stale`}, "1", HealthGood},
		{500, "", []string{`{__name__="a"=stale`}, "0", HealthBad},
		{500, "", nil, "0", HealthBad},
		{200, "a 4\nb 5\n", []string{`{__name__="a"=4`, `{__name__="b"=5`}, "1", HealthGood},
		{200, "a 5\nb{ 6\n", []string{`{__name__="a"=stale`, `{__name__="b"=stale`}, "0", HealthBad},
	}
	for i, st := range steps {
		pg.set(st.status, st.body)
		ts := at.Add(time.Duration(i) * 15 * time.Second)
		l.scrapeOnce(ctx, ts)
		got := app.take()
		if v := values(got, "a", "b", "c"); !slices.Equal(v, st.want) {
			t.Errorf("scrape %d: %v, want %v", i, v, st.want)
		}
		if up := values(got, "up"); len(up) != 1 || up[0] != `{__name__="up"=`+st.up {
			t.Errorf("scrape %d: up %v, want %s", i, up, st.up)
		}
		for _, smp := range got {
			if smp.t != ts.UnixMilli() {
				t.Errorf("scrape %d: %s at %d, want the scrape's time", i, smp, ts.UnixMilli())
			}
		}
		h := s.Health()[0]
		if h.Health != st.health || !h.LastScrape.Equal(ts) || (h.LastError != nil) != (st.health == HealthBad) {
			t.Errorf("scrape %d: health %+v, want %s at %s", i, h, st.health, ts)
		}
		if i == 2 && !strings.Contains(fmt.Sprint(h.LastError), "500") {
			t.Errorf("scrape %d: last error %v, want the HTTP status", i, h.LastError)
		}
	}

	// A successful scrape, then the target leaves: its series, the scrape's
	// own included, are marked stale.
	pg.set(200, "a 6\n")
	l.scrapeOnce(ctx, at.Add(time.Hour))
	app.take()
	if err := s.Apply(Config{Interval: time.Hour, Timeout: 5 * time.Second, Keep: "a|b"}, nil); err != nil {
		t.Fatal(err)
	}
	got := app.take()
	if v := values(got, "a", "up"); !slices.Equal(v, []string{`{__name__="a"=stale`, `{__name__="up"=stale`}) {
		t.Errorf("when the target left: %v", v)
	}
	if h := s.Health(); len(h) != 0 {
		t.Errorf("health of a removed target: %+v", h)
	}
}

func TestApplyKeepsUnchangedLoops(t *testing.T) {
	a, b := newTarget(t, &page{status: 200}), newTarget(t, &page{status: 200})
	s, err := New(&captured{}, nil, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Interval: time.Hour, Timeout: time.Second, Keep: "x"}
	if err := s.Apply(cfg, []Target{a, b}); err != nil {
		t.Fatal(err)
	}
	first := s.loops[targetKey(a)]
	if err := s.Apply(cfg, []Target{a, a}); err != nil {
		t.Fatal(err)
	}
	if s.loops[targetKey(a)] != first || len(s.loops) != 1 || len(s.Health()) != 1 {
		t.Error("an unchanged target's loop was replaced, a removed one kept, or a target listed twice scraped twice")
	}
	cfg.Keep = "y"
	if err := s.Apply(cfg, []Target{a}); err != nil {
		t.Fatal(err)
	}
	if s.loops[targetKey(a)] == first {
		t.Error("a target kept its loop after the configuration changed")
	}
	for _, bad := range []Config{{Interval: time.Hour}, {Interval: time.Hour, Timeout: time.Second, Keep: "("}} {
		if err := s.Apply(bad, []Target{a}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRunScrapesOnItsClock(t *testing.T) {
	pg := &page{status: 200, body: "a 1\n"}
	app := &captured{}
	s, err := New(app, nil, prometheus.NewRegistry(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(Config{Interval: 50 * time.Millisecond, Timeout: time.Second}, []Target{newTarget(t, pg)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	var got []sample
	for deadline := time.Now().Add(time.Minute); len(values(got, "a")) < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("three scrapes did not happen in a minute: %v", got)
		}
		got = append(got, app.take()...)
	}
	cancel()
	<-done
	if v := values(app.take(), "a"); len(v) == 0 || v[len(v)-1] != `{__name__="a"=stale` {
		t.Errorf("after Run ended: %v, want the series marked stale", v)
	}
}

// TestAgreesWithPrometheus scrapes each engine fixture with Prometheus's
// scrape manager, keeping half its families with a metric relabelling
// rule, and with the scraper, keeping the same ones: the samples must be
// the same, with classic histograms kept and converted.
func TestAgreesWithPrometheus(t *testing.T) {
	fixtures, err := filepath.Glob(filepath.Join("..", "..", "collector", "profiles", "testdata", "*", "*_t00.prom"))
	if err != nil || len(fixtures) < 5 {
		t.Fatalf("fixtures: %v %v", fixtures, err)
	}
	for _, path := range fixtures {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		families := everyOtherFamily(string(b))
		for _, tc := range []struct {
			native bool
			keep   string
		}{
			// As the embedded source asks: a histogram by its family's name
			// when it becomes a native one, by its samples' when not.
			{native: true, keep: families},
			{native: false, keep: families + "(?:_bucket|_sum|_count)?"},
			{native: false, keep: families},
		} {
			native, keep := tc.native, tc.keep
			t.Run(fmt.Sprintf("%s/native=%v/keep=%s", filepath.Base(path), native, keep), func(t *testing.T) {
				target := newTarget(t, &page{status: 200, body: string(b)})
				want := withPrometheus(t, target, keep, native)
				app := &captured{}
				s, err := New(app, nil, nil, "test")
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Apply(Config{Interval: time.Hour, Timeout: 5 * time.Second, Keep: keep, MetricRelabel: renameRules(t), NativeHistograms: native}, []Target{target}); err != nil {
					t.Fatal(err)
				}
				// The second scrape reads the page from the series cache.
				for scrape := 1; scrape <= 2; scrape++ {
					onlyLoop(t, s).scrapeOnce(context.Background(), time.Now())
					got := withoutScrapeSeries(app.take())
					if len(got) < 3 {
						t.Fatalf("scrape %d: only %d samples: %v", scrape, len(got), got)
					}
					if !slices.Equal(got, want) {
						t.Errorf("scrape %d: the scraper appended\n%s\nPrometheus's scrape\n%s", scrape, strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
				}
			})
		}
	}
}

// everyOtherFamily is the regular expression of every other family a page
// declares.
func everyOtherFamily(page string) string {
	var names []string
	for i, m := range regexp.MustCompile(`(?m)^# TYPE (\S+)`).FindAllStringSubmatch(page, -1) {
		if i%2 == 0 {
			names = append(names, regexp.QuoteMeta(m[1]))
		}
	}
	return "(?:" + strings.Join(names, "|") + ")"
}

// renameRules rename model_name to model, as the embedded source does.
func renameRules(t *testing.T) []*relabel.Config {
	t.Helper()
	return loadJob(t, "", false).ScrapeConfigs[0].MetricRelabelConfigs
}

// loadJob is a Prometheus configuration with one job that keeps keep
// (everything when empty) and renames model_name to model.
func loadJob(t *testing.T, keep string, native bool) *promconfig.Config {
	t.Helper()
	var rules []string
	if keep != "" {
		rules = append(rules, fmt.Sprintf(`{source_labels: [__name__], regex: %q, action: keep}`, keep))
	}
	rules = append(rules, `{source_labels: [model_name], regex: "(.+)", target_label: model, replacement: "$1", action: replace}`)
	cfg, err := promconfig.Load(fmt.Sprintf(`
global: {scrape_interval: 100ms, scrape_timeout: 100ms}
scrape_configs:
  - job_name: test
    fallback_scrape_protocol: PrometheusText0.0.4
    convert_classic_histograms_to_nhcb: %v
    metric_relabel_configs: [%s]
`, native, strings.Join(rules, ", ")), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// withPrometheus is what Prometheus's scrape manager appends in its first
// scrape of target, keeping keep. The page has no timestamps of its own.
func withPrometheus(t *testing.T, target Target, keep string, native bool) []string {
	t.Helper()
	app := &captured{}
	mgr, err := scrape.NewManager(&scrape.Options{DiscoveryReloadInterval: model.Duration(10 * time.Millisecond), DiscoveryReloadOnStartup: true}, nil, nil, nil, app, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.ApplyConfig(loadJob(t, keep, native)); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(target.URL)
	if err != nil {
		t.Fatal(err)
	}
	tsets := make(chan map[string][]*targetgroup.Group, 1)
	tsets <- map[string][]*targetgroup.Group{"test": {{Source: "test", Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}}}}}
	go func() { _ = mgr.Run(tsets) }()
	defer mgr.Stop()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if got := app.take(); len(got) > 0 {
			// On a busy machine the manager may have scraped more than
			// once by now: the first scrape's samples are the earliest.
			first := slices.MinFunc(got, func(a, b sample) int { return cmp.Compare(a.t, b.t) }).t
			return withoutScrapeSeries(slices.DeleteFunc(got, func(s sample) bool { return s.t != first }))
		}
		if time.Now().After(deadline) {
			t.Fatal("Prometheus's scrape manager appended nothing in a minute")
		}
	}
}

// withoutScrapeSeries are the samples of the page, without timestamps,
// sorted: the scrape's own series are counted differently.
func withoutScrapeSeries(samples []sample) []string {
	var out []string
	for _, s := range samples {
		if strings.HasPrefix(s.labels, `{__name__="scrape_`) {
			continue
		}
		out = append(out, s.labels+" = "+s.value)
	}
	slices.Sort(out)
	return out
}

// TestScrapeReadsPastSmallBuffers scrapes, over the client's small
// connection buffers, a response whose header line is longer than the
// read buffer and whose page is large, gzipped and chunked, twice.
func TestScrapeReadsPastSmallBuffers(t *testing.T) {
	var body strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&body, "a{i=\"%d\"} %d\n", i, i)
	}
	long := strings.Repeat("x", 8<<10)
	target := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Header().Set("X-Long", long)
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			_, _ = io.WriteString(w, body.String())
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, body.String())
		_ = zw.Close()
	}))
	app := &captured{}
	s, err := New(app, nil, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(Config{Interval: time.Hour, Timeout: 5 * time.Second, Keep: "a"}, []Target{target}); err != nil {
		t.Fatal(err)
	}
	l := onlyLoop(t, s)
	for i := range 2 {
		l.scrapeOnce(context.Background(), time.Unix(1000+int64(i)*15, 0))
		if h := s.Health()[0]; h.LastError != nil {
			t.Fatalf("scrape %d: %v", i, h.LastError)
		}
		if n := len(values(app.take(), "a")); n != 5000 {
			t.Errorf("scrape %d: %d samples of a, want 5000", i, n)
		}
	}
}

// TestScrapeRequests scrapes a target three times, its page changing
// format in between, and checks that every request, the one built by the
// first scrape and reused, asks as Prometheus asks, and that each page is
// read in its own format.
func TestScrapeRequests(t *testing.T) {
	pages := []struct{ contentType, body string }{
		{"text/plain; version=0.0.4", "a 1\n"},
		{"application/openmetrics-text; version=1.0.0; charset=utf-8", "# TYPE a gauge\na 2\n# EOF\n"},
		{"text/plain; version=0.0.4; charset=utf-8", "a 3\n"},
	}
	var (
		mtx     sync.Mutex
		headers []http.Header
	)
	target := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mtx.Lock()
		defer mtx.Unlock()
		page := pages[len(headers)%len(pages)]
		headers = append(headers, r.Header.Clone())
		w.Header().Set("Content-Type", page.contentType)
		_, _ = io.WriteString(w, page.body)
	}))
	app := &captured{}
	s, err := New(app, nil, nil, "perfagent/test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(Config{Interval: time.Hour, Timeout: 2500 * time.Millisecond, Keep: "a"}, []Target{target}); err != nil {
		t.Fatal(err)
	}
	l := onlyLoop(t, s)
	for i := range pages {
		l.scrapeOnce(context.Background(), time.Unix(1000+int64(i)*15, 0))
		if h := s.Health()[0]; h.LastError != nil {
			t.Fatalf("scrape %d: %v", i+1, h.LastError)
		}
		if got, want := values(app.take(), "a"), []string{fmt.Sprintf(`{__name__="a"=%d`, i+1)}; !slices.Equal(got, want) {
			t.Errorf("scrape %d: a is %v, want %v", i+1, got, want)
		}
	}
	mtx.Lock()
	defer mtx.Unlock()
	if len(headers) != len(pages) {
		t.Fatalf("%d requests, want %d", len(headers), len(pages))
	}
	for i, h := range headers {
		for name, want := range map[string]string{
			"Accept":                              acceptHeader,
			"User-Agent":                          "perfagent/test",
			"X-Prometheus-Scrape-Timeout-Seconds": "2.5",
			"Accept-Encoding":                     "gzip",
		} {
			if got := h.Get(name); got != want {
				t.Errorf("request %d: %s is %q, want %q", i+1, name, got, want)
			}
		}
	}
}
