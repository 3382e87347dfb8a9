package collector

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/internal/testutil"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

// linearExposition serves a fixture whose counters and histograms grow
// linearly in wall time, at the slope between two fixture scrapes 15 s
// apart, and whose gauges stay at their first value. Rates over any window
// are then the same whenever a scraper samples, so two scrapers that are
// not in phase must compute the same signals.
type linearExposition struct {
	start time.Time
	lines []expositionLine
}

type expositionLine struct {
	text       string // comment lines, copied
	series     string
	base, rate float64
}

func loadLinearExposition(t testing.TB, first, second string) *linearExposition {
	t.Helper()
	read := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	}
	a, b := read(first), read(second)
	later := map[string]float64{}
	for _, l := range b {
		if series, v, ok := splitSample(l); ok {
			later[series] = v
		}
	}
	e := &linearExposition{start: time.Now()}
	gauge := false
	for _, l := range a {
		if strings.HasPrefix(l, "# TYPE ") {
			gauge = strings.HasSuffix(l, " gauge")
		}
		series, v, ok := splitSample(l)
		if !ok {
			e.lines = append(e.lines, expositionLine{text: l})
			continue
		}
		line := expositionLine{series: series, base: v}
		if w, ok := later[series]; ok && !gauge {
			line.rate = (w - v) / 15
		}
		e.lines = append(e.lines, line)
	}
	return e
}

func splitSample(l string) (string, float64, bool) {
	if l == "" || strings.HasPrefix(l, "#") {
		return "", 0, false
	}
	i := strings.LastIndexByte(l, ' ')
	v, err := strconv.ParseFloat(l[i+1:], 64)
	if i < 0 || err != nil {
		return "", 0, false
	}
	return l[:i], v, true
}

func (e *linearExposition) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s := time.Since(e.start).Seconds()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	bw := bufio.NewWriter(w)
	for _, l := range e.lines {
		if l.series == "" {
			fmt.Fprintln(bw, l.text)
			continue
		}
		fmt.Fprintf(bw, "%s %s\n", l.series, strconv.FormatFloat(l.base+l.rate*s, 'f', -1, 64))
	}
	_ = bw.Flush()
}

// startFixtureServers serves every engine's fixtures as linear
// expositions and returns them as targets and as host:port addresses.
func startFixtureServers(t *testing.T) ([]config.TargetConfig, []string) {
	t.Helper()
	var targets []config.TargetConfig
	var addrs []string
	for _, engine := range []string{"vllm", "sglang", "tgi"} {
		firsts, _ := filepath.Glob(filepath.Join("profiles", "testdata", engine, "*_t00.prom"))
		if len(firsts) == 0 {
			t.Fatalf("no fixtures for %s", engine)
		}
		for _, f := range firsts {
			srv := httptest.NewServer(loadLinearExposition(t, f, strings.Replace(f, "_t00", "_t15", 1)))
			t.Cleanup(srv.Close)
			targets = append(targets, config.TargetConfig{URL: config.URL(srv.URL + "/metrics")})
			addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
		}
	}
	return targets, addrs
}

// fixtureScrapeConfig scrapes the fixture servers every second.
func fixtureScrapeConfig(addrs []string) string {
	return fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 900ms}\nscrape_configs:\n  - job_name: fixtures\n    static_configs:\n      - targets: [%s]\n", strings.Join(addrs, ", "))
}

// waitForFixtureScrapes waits until src has scraped every fixture for
// longer than the rate window.
func waitForFixtureScrapes(ctx context.Context, t *testing.T, what string, src Source, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		v, err := src.Query(ctx, `count(count_over_time(up{job="fixtures"}[12s]) >= 12)`, time.Now())
		if err == nil && len(v) == 1 && int(v[0].F) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not scrape all %d fixtures in time (last error: %v)", what, n, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestRemoteAndEmbeddedModesAgree runs Debian's prometheus and the
// embedded scraper against the same fixture servers of every built-in
// engine and checks that both sources give the same signals.
func TestRemoteAndEmbeddedModesAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and waits for real scrapes")
	}
	targets, addrs := startFixtureServers(t)
	promURL := testutil.StartPrometheus(t, fixtureScrapeConfig(addrs))

	// The embedded source scrapes the same servers on the same clock, into
	// the store's raw samples as the agent does.
	store, err := signalstore.Open(signalstore.Options{Path: t.TempDir(), Retention: 24 * time.Hour, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	m := testMetrics()
	embedded, err := NewEmbeddedSource(store, nil, m, nil, shard.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Global.ScrapeInterval = config.Duration(time.Second)
	cfg.Global.ScrapeTimeout = config.Duration(900 * time.Millisecond)
	cfg.Collector.RateWindow = config.Duration(10 * time.Second)
	cfg.Source.Targets = targets
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := embedded.ApplyConfig(cfg, profs); err != nil {
		t.Fatal(err)
	}
	go func() { _ = embedded.Run() }()
	t.Cleanup(embedded.Stop)

	rcfg := config.DefaultRemoteConfig()
	rcfg.URL = config.URL(promURL)
	rcfg.QueryTimeout = config.Duration(10 * time.Second)
	remote, err := NewRemoteSource(rcfg, testMetrics())
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The embedded scraper started earlier.
	waitForFixtureScrapes(ctx, t, "Prometheus", remote, len(addrs))

	at := time.Now().Add(-1500 * time.Millisecond)
	collect := func(src Source) *Snapshot {
		c := New(Options{Metrics: testMetrics()})
		if err := c.ApplyConfig(cfg, src, profs); err != nil {
			t.Fatal(err)
		}
		snap, err := c.Collect(ctx, at, CollectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Errors) > 0 {
			t.Errorf("rule errors: %v", snap.Errors)
		}
		return snap
	}
	rs, es := collect(remote), collect(embedded)
	if len(rs.Instances) != len(addrs) || len(es.Instances) != len(addrs) {
		t.Fatalf("instances: remote %d, embedded %d, want %d", len(rs.Instances), len(es.Instances), len(addrs))
	}
	index := func(s *Snapshot) map[string]float64 {
		m := map[string]float64{}
		for _, x := range s.Samples {
			m[x.Labels.String()] = x.Value
		}
		return m
	}
	ri, ei := index(rs), index(es)
	engines := map[string]bool{}
	for k, rv := range ri {
		ev, ok := ei[k]
		if !ok {
			t.Errorf("%s: remote %g, missing in embedded mode", k, rv)
			continue
		}
		if math.Abs(rv-ev) > 0.01*math.Max(math.Abs(rv), math.Abs(ev))+1e-12 {
			t.Errorf("%s: remote %g, embedded %g (more than 1%% apart)", k, rv, ev)
		}
	}
	for k, ev := range ei {
		if _, ok := ri[k]; !ok {
			t.Errorf("%s: embedded %g, missing in remote mode", k, ev)
		}
	}
	for _, s := range rs.Samples {
		engines[s.Labels.Get(signals.LabelEngine)+"/"+s.Labels.Get(model.MetricNameLabel)] = true
	}
	if len(ri) < 3*len(addrs) {
		t.Errorf("only %d signal series compared; the fixtures should give many more", len(ri))
	}
	t.Logf("compared %d signal series of %d instances (%d engine×signal pairs)", len(ri), len(addrs), len(engines))

	// The same signals and settings came from a store that kept only the
	// families the profiles and settings queries read.
	for _, inst := range rs.Instances {
		for _, e := range es.Instances {
			if e.Instance == inst.Instance && fmt.Sprint(e.Settings) != fmt.Sprint(inst.Settings) {
				t.Errorf("%s: settings remote %v, embedded %v", inst.Instance, inst.Settings, e.Settings)
			}
		}
	}
	queries, _, classic := embeddedQueries(profs)
	if classic != nil {
		t.Fatalf("the built-in profiles keep classic histograms: %v", classic)
	}
	keep, _ := readFamilies(queries)
	scraped, err := remote.Query(ctx, `count by (__name__) ({job="fixtures"})`, at)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := store.Query(ctx, `count by (__name__) ({job="perfagent"})`, at)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, s := range stored {
		kept[s.Metric.Get(model.MetricNameLabel)] = true
	}
	histograms := map[string]bool{}
	for _, s := range scraped {
		if family, suffix := splitHistogramName(s.Metric.Get(model.MetricNameLabel)); suffix == "_bucket" {
			histograms[family] = true
		}
	}
	read := regexp.MustCompile("^(?:" + keep + ")$")
	dropped := 0
	for _, s := range scraped {
		// A classic histogram's series are stored as one native series
		// named after the family.
		name := s.Metric.Get(model.MetricNameLabel)
		if family, suffix := splitHistogramName(name); suffix != "" && histograms[family] {
			name = family
		}
		if want := read.MatchString(name) || name == "up" || strings.HasPrefix(name, "scrape_"); kept[name] != want {
			t.Errorf("family %s kept %v, want %v", name, kept[name], want)
		}
		if !kept[name] {
			dropped++
		}
	}
	for name := range kept {
		if _, suffix := splitHistogramName(name); suffix == "_bucket" {
			t.Errorf("bucket series %s stored; the scrape should store a native histogram", name)
		}
	}
	if dropped == 0 {
		t.Error("the fixtures have no family the profiles do not read; the test shows nothing")
	}
	t.Logf("kept %d of %d families", len(kept), len(scraped))

	// The signals above came without the rename calls, from series the
	// scrape renamed itself (rename.go).
	for _, q := range []string{
		`label_replace(rate(vllm:prompt_tokens_total[1m]), "model", "$1", "model_name", "(.*)")`,
		`label_replace(label_replace(sglang:num_running_reqs, "model", "$1", "name", "(.+)"), "model", "$1", "model_name", "(.+)")`,
	} {
		if got := embedded.stored(q); strings.Contains(got, "label_replace") {
			t.Errorf("the embedded source sends %s", got)
		}
	}
	renamed, err := store.Query(ctx, `{__name__=~"vllm:num_requests_running|sglang:num_running_reqs", model_name!=""}`, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range renamed {
		if s.Metric.Get("model") != s.Metric.Get("model_name") {
			t.Errorf("stored series %s: want model as model_name", s.Metric)
		}
	}
	if len(renamed) == 0 {
		t.Error("no stored vLLM or SGLang series with model_name; the check shows nothing")
	}
}

// TestVictoriaMetricsAgreesWithPrometheus runs the remote source against
// Debian's VictoriaMetrics and Debian's Prometheus scraping the same
// fixture servers of every built-in engine, and checks that every
// profile's PromQL is accepted by both and gives the same signals.
func TestVictoriaMetricsAgreesWithPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and VictoriaMetrics and waits for real scrapes")
	}
	targets, addrs := startFixtureServers(t)
	vmURL := testutil.StartVictoriaMetrics(t, fixtureScrapeConfig(addrs))
	promURL := testutil.StartPrometheus(t, fixtureScrapeConfig(addrs))
	source := func(url string) Source {
		rcfg := config.DefaultRemoteConfig()
		rcfg.URL = config.URL(url)
		rcfg.QueryTimeout = config.Duration(10 * time.Second)
		src, err := NewRemoteSource(rcfg, testMetrics())
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	prom, vm := source(promURL), source(vmURL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitForFixtureScrapes(ctx, t, "VictoriaMetrics", vm, len(addrs))
	waitForFixtureScrapes(ctx, t, "Prometheus", prom, len(addrs))

	cfg := config.Default()
	cfg.Global.ScrapeInterval = config.Duration(time.Second)
	cfg.Collector.RateWindow = config.Duration(10 * time.Second)
	cfg.Source.Targets = targets
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	at := time.Now().Add(-1500 * time.Millisecond)
	collect := func(what string, src Source) map[string]float64 {
		c := New(Options{Metrics: testMetrics()})
		if err := c.ApplyConfig(cfg, src, profs); err != nil {
			t.Fatal(err)
		}
		snap, err := c.Collect(ctx, at, CollectOptions{})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, e := range snap.Errors {
			t.Errorf("%s refuses a profile's PromQL: %s", what, e)
		}
		if len(snap.Instances) != len(addrs) {
			t.Errorf("%s: %d instances, want %d", what, len(snap.Instances), len(addrs))
		}
		m := map[string]float64{}
		for _, x := range snap.Samples {
			m[x.Labels.String()] = x.Value
		}
		return m
	}
	pi, vi := collect("Prometheus", prom), collect("VictoriaMetrics", vm)
	worst, worstKey := 0.0, ""
	for k, pv := range pi {
		vv, ok := vi[k]
		if !ok {
			t.Errorf("%s: Prometheus %g, missing from VictoriaMetrics", k, pv)
			continue
		}
		diff := math.Abs(pv-vv) / math.Max(math.Max(math.Abs(pv), math.Abs(vv)), 1e-9)
		if diff > 0.01 {
			t.Errorf("%s: Prometheus %g, VictoriaMetrics %g (more than 1%% apart)", k, pv, vv)
		}
		if diff > worst {
			worst, worstKey = diff, k
		}
	}
	for k, vv := range vi {
		if _, ok := pi[k]; !ok {
			t.Errorf("%s: VictoriaMetrics %g, missing from Prometheus", k, vv)
		}
	}
	if len(pi) < 3*len(addrs) {
		t.Errorf("only %d signal series compared; the fixtures should give many more", len(pi))
	}
	t.Logf("compared %d signal series of %d instances; largest difference %.2g%% (%s)", len(pi), len(addrs), 100*worst, worstKey)
}
