package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// countingGatherer counts its gatherings.
type countingGatherer struct {
	g prometheus.Gatherer
	n atomic.Int64
}

func (c *countingGatherer) Gather() ([]*dto.MetricFamily, error) {
	c.n.Add(1)
	return c.g.Gather()
}

// textRegistry is a registry that writes its families in the text
// format itself (TextFamilies), as the signals' and settings' exporters
// do, or declines to. It lists them in reverse name order, which the page
// must not depend on.
type textRegistry struct {
	*prometheus.Registry
	decline bool
}

func (r textRegistry) TextFamilies() ([]string, func([]byte, int) []byte, bool) {
	mfs, err := r.Gather()
	if r.decline || err != nil {
		return nil, nil, false
	}
	slices.Reverse(mfs)
	names := make([]string, len(mfs))
	for i, mf := range mfs {
		names[i] = mf.GetName()
	}
	return names, func(b []byte, i int) []byte {
		buf := bytes.NewBuffer(b)
		if _, err := expfmt.MetricFamilyToText(buf, mfs[i]); err != nil {
			panic(err)
		}
		return buf.Bytes()
	}, true
}

// metricsFixture is a live registry and two per-cycle ones: one whose
// signal gauge exports nothing while failed, as the signals exporter does
// after a failed cycle, and one of settings, which writes its families
// in the text format itself unless declineText is set; its families sort
// before and after the other's.
type metricsFixture struct {
	live, perCycle, settings *prometheus.Registry
	declineText              bool
	counted                  *countingGatherer
	gen                      atomic.Uint64
	failed                   atomic.Bool
	requests                 prometheus.Counter
	signal                   *prometheus.GaugeVec
}

func newMetricsFixture(t *testing.T) *metricsFixture {
	t.Helper()
	f := &metricsFixture{live: prometheus.NewRegistry(), perCycle: prometheus.NewRegistry(), settings: prometheus.NewRegistry()}
	f.requests = prometheus.NewCounter(prometheus.CounterOpts{Name: "perfagent_test_requests_total", Help: "Requests."})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "perfagent_test_seconds", Help: "Latency."})
	latency.Observe(0.3)
	f.live.MustRegister(f.requests, latency)
	f.signal = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llm_requests_running", Help: "Running."}, []string{"instance", "engine", "model"})
	for i, in := range []string{"a:1", "b:1", "c:1"} {
		f.signal.WithLabelValues(in, "vllm", "m").Set(float64(i))
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "perfagent_setting_info", Help: "Settings."}, []string{"instance", "setting"})
	info.WithLabelValues("a:1", "max_num_seqs").Set(1)
	info.WithLabelValues("b:1", "block_size").Set(1)
	usage := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llm_kv_cache_usage_ratio", Help: "KV cache usage,\nas a \\ fraction."}, []string{"instance", "model"})
	usage.WithLabelValues("a:1", `say "hi"\n`).Set(0.25)
	usage.WithLabelValues("b:1", "m").Set(math.NaN())
	f.settings.MustRegister(info, usage)
	f.perCycle.MustRegister(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		if !f.failed.Load() {
			f.signal.Collect(ch)
		}
	}))
	f.counted = &countingGatherer{g: f.perCycle}
	return f
}

func (f *metricsFixture) handler(logger *slog.Logger) *Handler {
	return New(Options{Logger: logger, Gatherer: f.live, PerCycle: []prometheus.Gatherer{f.counted, textRegistry{f.settings, f.declineText}}, Generation: f.gen.Load, Ready: func() bool { return true }})
}

// reference is what promhttp serves for both registries as one.
func (f *metricsFixture) reference(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	promhttp.HandlerFor(prometheus.Gatherers{f.live, f.perCycle, f.settings}, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return w
}

func scrape(h http.Handler, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func body(t *testing.T, w *httptest.ResponseRecorder) []byte {
	t.Helper()
	if w.Header().Get("Content-Encoding") != "gzip" {
		return w.Body.Bytes()
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMetricsPageAsOneRegistry: the page is byte for byte the one promhttp
// serves for the live and per-cycle registries together, in every format
// and compression, before and after a cycle, whether a per-cycle gatherer
// writes its text itself or not.
func TestMetricsPageAsOneRegistry(t *testing.T) {
	for _, declineText := range []bool{false, true} {
		f := newMetricsFixture(t)
		f.declineText = declineText
		h := f.handler(slog.New(slog.DiscardHandler)).Router()
		for cycle := range 2 {
			f.checkPage(t, h, cycle)
			// The next cycle changes a signal and the live metrics
			// change between scrapes.
			f.signal.WithLabelValues("a:1", "vllm", "m").Set(42)
			f.requests.Inc()
			f.gen.Add(2)
		}
	}
}

// checkPage compares h's page with promhttp's in every format and
// compression.
func (f *metricsFixture) checkPage(t *testing.T, h http.Handler, cycle int) {
	t.Helper()
	for _, header := range [][]string{
		nil,
		{"Accept-Encoding", "gzip"},
		{"Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"},
		{"Accept", "text/plain;version=0.0.4", "Accept-Encoding", "gzip"},
		{"Accept", "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.9,text/plain;version=0.0.4;q=0.5"},
		{"Accept", "text/plain;version=0.0.4;escaping=underscores"},
	} {
		got := scrape(h, header...)
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		want := f.reference(r)
		if got, want := body(t, got), body(t, want); !bytes.Equal(got, want) {
			t.Errorf("declining text %v, cycle %d, %v: page differs from promhttp's:\n%s\nwant\n%s", f.declineText, cycle, header, got, want)
		}
		if got.Code != 200 || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") || got.Header().Get("Content-Encoding") != want.Header().Get("Content-Encoding") ||
			strings.Join(got.Header().Values("Vary"), ",") != strings.Join(want.Header().Values("Vary"), ",") {
			t.Errorf("cycle %d, %v: status %d, Content-Type %q, Content-Encoding %q; promhttp says %q, %q", cycle, header, got.Code,
				got.Header().Get("Content-Type"), got.Header().Get("Content-Encoding"), want.Header().Get("Content-Type"), want.Header().Get("Content-Encoding"))
		}
	}
}

// TestMetricsPerCycleGatheredOncePerGeneration: scrapes within a
// generation gather the per-cycle metrics once and the live ones every
// time; a failed cycle, a generation of its own, stops the signals at
// once.
func TestMetricsPerCycleGatheredOncePerGeneration(t *testing.T) {
	f := newMetricsFixture(t)
	h := f.handler(slog.New(slog.DiscardHandler)).Router()
	for i := range 5 {
		f.requests.Inc()
		page := string(body(t, scrape(h, "Accept-Encoding", "gzip")))
		if !strings.Contains(page, "perfagent_test_requests_total "+string(rune('1'+i))) {
			t.Errorf("scrape %d does not show the live counter at %d:\n%s", i, i+1, page)
		}
	}
	if n := f.counted.n.Load(); n != 1 {
		t.Errorf("five scrapes in a generation gathered the per-cycle metrics %d times, want once", n)
	}
	f.signal.WithLabelValues("a:1", "vllm", "m").Set(42)
	if page := scrape(h).Body.String(); strings.Contains(page, "42") {
		t.Error("a per-cycle value changed within a generation was served")
	}

	// The cycle fails: its signals are gone from the next scrape.
	f.failed.Store(true)
	f.gen.Add(1)
	if page := scrape(h).Body.String(); strings.Contains(page, "llm_requests_running") || !strings.Contains(page, "perfagent_setting_info") {
		t.Errorf("after a failed cycle the page still has the signals, or lost the rest:\n%s", page)
	}
	f.failed.Store(false)
	f.gen.Add(1)
	if page := scrape(h).Body.String(); !strings.Contains(page, `llm_requests_running{engine="vllm",instance="a:1",model="m"} 42`) {
		t.Errorf("after the source came back the page lacks the new signal:\n%s", page)
	}
}

// TestMetricsFamilyInBoth: a family both registries have is merged as one
// registry would, and a series both have fails the scrape as it would.
func TestMetricsFamilyInBoth(t *testing.T) {
	f := newMetricsFixture(t)
	other := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llm_requests_running", Help: "Running."}, []string{"instance", "engine", "model"})
	other.WithLabelValues("z:1", "vllm", "m").Set(7)
	f.live.MustRegister(other)
	var logs bytes.Buffer
	h := f.handler(slog.New(slog.NewTextHandler(&logs, nil))).Router()
	got := scrape(h)
	if want := f.reference(httptest.NewRequest(http.MethodGet, "/metrics", nil)); got.Code != 200 || got.Body.String() != want.Body.String() {
		t.Errorf("merged page = %d\n%s\nwant\n%s", got.Code, got.Body, want.Body)
	}
	other.WithLabelValues("a:1", "vllm", "m").Set(8)
	if got := scrape(h); got.Code != http.StatusInternalServerError || !strings.Contains(got.Body.String(), "collected before with the same name and label values") {
		t.Errorf("a series in both = %d %s, want 500 naming the duplicate", got.Code, got.Body)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Error("a failed gathering was not logged at error")
	}
}

// failingWriter is a client that went away.
type failingWriter struct{ header http.Header }

func (w *failingWriter) Header() http.Header       { return w.header }
func (w *failingWriter) Write([]byte) (int, error) { return 0, errors.New("write: broken pipe") }
func (w *failingWriter) WriteHeader(int)           {}

// TestMetricsClientGoneNotAnError: a scraper that disconnects is not logged
// at error.
func TestMetricsClientGoneNotAnError(t *testing.T) {
	f := newMetricsFixture(t)
	var logs bytes.Buffer
	h := f.handler(slog.New(slog.NewTextHandler(&logs, nil))).Router()
	for _, enc := range []string{"", "gzip"} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept-Encoding", enc)
		h.ServeHTTP(&failingWriter{header: http.Header{}}, r)
	}
	if logs.Len() > 0 {
		t.Errorf("a scraper that went away was logged:\n%s", logs.String())
	}
}

// TestSharedGathering: calls that arrive while a gathering is under way
// share the next one, which sees what changed before they arrived.
func TestSharedGathering(t *testing.T) {
	var (
		value    atomic.Int64
		gathers  atomic.Int64
		entered  = make(chan struct{}, 1)
		release  = make(chan struct{})
		firstRun atomic.Bool
	)
	value.Store(1)
	s := &sharedGatherer{g: prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		gathers.Add(1)
		v := float64(value.Load())
		if firstRun.CompareAndSwap(false, true) {
			entered <- struct{}{}
			<-release
		}
		name, typ := "x", dto.MetricType_GAUGE
		return []*dto.MetricFamily{{Name: &name, Type: &typ, Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}}}, nil
	})}
	got := func(g *gathering) float64 {
		if g.err != nil {
			t.Error(g.err)
			return 0
		}
		return g.mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
	first := make(chan float64)
	go func() { first <- got(s.gather()) }()
	<-entered
	value.Store(2)
	later := make(chan float64)
	for range 3 {
		go func() { later <- got(s.gather()) }()
	}
	// Let the three calls queue behind the gathering under way.
	for {
		s.mtx.Lock()
		queued := s.next != nil
		s.mtx.Unlock()
		if queued {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	close(release)
	if v := <-first; v != 1 {
		t.Errorf("first call got %g, want 1", v)
	}
	for range 3 {
		if v := <-later; v != 2 {
			t.Errorf("a call that arrived after the change got %g, want 2", v)
		}
	}
	if n := gathers.Load(); n != 2 {
		t.Errorf("four calls, three of them at once, gathered %d times, want 2", n)
	}
	if v := got(s.gather()); v != 2 || gathers.Load() != 3 {
		t.Errorf("a call alone got %g after %d gatherings, want 2 after 3", v, gathers.Load())
	}
}

// TestDisjointGatherersShareAFamily: per-cycle gatherers that have a
// family of the same name after all are merged as prometheus.Gatherers
// merges them, and a series in both is the error it reports.
func TestDisjointGatherersShareAFamily(t *testing.T) {
	registry := func(instances ...string) *prometheus.Registry {
		reg := prometheus.NewRegistry()
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llm_requests_running", Help: "Running."}, []string{"instance"})
		for _, in := range instances {
			g.WithLabelValues(in).Set(1)
		}
		reg.MustRegister(g)
		return reg
	}
	a, b := registry("a:1", "c:1"), registry("b:1")
	got, err := disjointGatherers{a, b}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want, err := prometheus.Gatherers{a, b}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].GetMetric()) != 3 || got[0].String() != want[0].String() {
		t.Errorf("merged %v, want %v", got, want)
	}
	if _, err := (disjointGatherers{a, registry("a:1")}).Gather(); err == nil || !strings.Contains(err.Error(), "collected before with the same name and label values") {
		t.Errorf("a series in both: err = %v, want the duplicate reported", err)
	}
	// One that writes its text itself is merged the same way.
	text := expfmt.NewFormat(expfmt.TypeTextPlain)
	ef, err := disjointGatherers{textRegistry{Registry: a}, b}.encode(text, 0)
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if _, err := expfmt.MetricFamilyToText(&page, want[0]); err != nil {
		t.Fatal(err)
	}
	if string(ef.b) != page.String() || len(ef.names) != 1 {
		t.Errorf("merged with a text writer:\n%s\nwant\n%s", ef.b, page.String())
	}
	if _, err := (disjointGatherers{textRegistry{Registry: a}, registry("a:1")}).encode(text, 0); err == nil {
		t.Error("a series in both, one written as text: no error")
	}
}
