package scraper

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/storage"
	"go.yaml.in/yaml/v3"
)

// Target is one page to scrape.
type Target struct {
	// URL of the page.
	URL string
	// Labels are set on every series scraped from the page (instance and
	// job), as Prometheus sets a target's labels: a label of the page with
	// the same name is kept as exported_<name>.
	Labels labels.Labels
}

// Config is how every target is scraped.
type Config struct {
	Interval time.Duration
	Timeout  time.Duration
	// Keep is the regular expression of the metric names to keep; the
	// scraper anchors it. Empty keeps every family.
	Keep string
	// MetricRelabel are applied, in order, to every kept series after the
	// target's labels are set, as Prometheus's metric_relabel_configs.
	MetricRelabel []*relabel.Config
	// NativeHistograms stores classic histograms as native histograms
	// with custom buckets.
	NativeHistograms bool
}

// Health is the state of one target's scrapes.
type Health struct {
	Target Target
	// Health is "up", "down" or "unknown" (not scraped yet), as
	// Prometheus says.
	Health             string
	LastError          error
	LastScrape         time.Time
	LastScrapeDuration time.Duration
}

// The values of Health.Health.
const (
	HealthUnknown = "unknown"
	HealthGood    = "up"
	HealthBad     = "down"
)

// Scraper scrapes a set of targets into a storage appender.
type Scraper struct {
	app    storage.AppendableV2
	logger *slog.Logger
	client *http.Client
	// userAgent is sent with every scrape.
	userAgent string
	metrics   *metrics
	// workers run the loops' scrapes.
	workers *workers
	// buffers holds the buffers pages are read and filtered into: a page
	// is needed only while its samples are appended, and few scrapes
	// overlap.
	buffers sync.Pool

	mtx      sync.Mutex
	ctx      context.Context // nil until Run
	cfg      Config
	compiled *scrapeRules
	loops    map[string]*loop
	targets  []Target // in the order Apply was given them
}

// scrapeRules are a Config's expressions, compiled once for every loop.
type scrapeRules struct {
	keep   *regexp.Regexp // nil keeps every name
	filter *familyFilter
}

// New returns a scraper appending to app, sending userAgent. Its metrics
// go to reg; nil keeps them private. A nil logger logs nothing.
func New(app storage.AppendableV2, logger *slog.Logger, reg prometheus.Registerer, userAgent string) (*Scraper, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Scraper{
		app:       app,
		logger:    logger,
		client:    newClient(),
		userAgent: userAgent,
		metrics:   m,
		workers:   newWorkers(workerIdle),
		loops:     map[string]*loop{},
	}, nil
}

// Apply puts cfg and targets in force. A target whose configuration did
// not change keeps scraping on its clock; the others start again, and
// the series of a target that is gone, or whose configuration changed,
// are marked stale.
func (s *Scraper) Apply(cfg Config, targets []Target) error {
	if cfg.Interval <= 0 || cfg.Timeout <= 0 {
		return fmt.Errorf("scrape interval %s and timeout %s must be positive", cfg.Interval, cfg.Timeout)
	}
	rules := &scrapeRules{}
	if cfg.Keep != "" {
		re, err := regexp.Compile("^(?:" + cfg.Keep + ")$")
		if err != nil {
			return fmt.Errorf("compiling the kept metric names %q: %w", cfg.Keep, err)
		}
		rules.keep, rules.filter = re, newFamilyFilter(re)
	}
	s.mtx.Lock()
	defer s.mtx.Unlock()
	same := s.compiled != nil && sameConfig(s.cfg, cfg)
	if !same {
		s.cfg, s.compiled = cfg, rules
	}
	next := make(map[string]*loop, len(targets))
	listed := make([]Target, 0, len(targets))
	for _, t := range targets {
		key := targetKey(t)
		if _, dup := next[key]; dup {
			continue // listed twice: scraped once
		}
		listed = append(listed, t)
		if l, ok := s.loops[key]; ok && same {
			next[key] = l
			delete(s.loops, key)
			continue
		}
		next[key] = s.newLoop(t)
	}
	for _, l := range s.loops {
		l.stop(true)
	}
	s.loops, s.targets = next, listed
	if s.ctx != nil {
		for _, l := range s.loops {
			l.start(s.ctx)
		}
	}
	s.metrics.targets.Set(float64(len(s.loops)))
	return nil
}

// Run scrapes until ctx is done, then marks every scraped series stale.
func (s *Scraper) Run(ctx context.Context) {
	s.mtx.Lock()
	s.ctx = ctx
	for _, l := range s.loops {
		l.start(ctx)
	}
	s.mtx.Unlock()
	<-ctx.Done()
	s.mtx.Lock()
	loops := s.loops
	s.loops = map[string]*loop{}
	s.mtx.Unlock()
	for _, l := range loops {
		l.stop(true)
	}
}

// Health reports every target's state, in the order Apply was given them.
func (s *Scraper) Health() []Health {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	out := make([]Health, 0, len(s.targets))
	for _, t := range s.targets {
		if l, ok := s.loops[targetKey(t)]; ok {
			out = append(out, l.currentHealth())
		}
	}
	return out
}

func (s *Scraper) newLoop(t Target) *loop {
	l := &loop{
		health:     Health{Target: t, Health: HealthUnknown},
		target:     t,
		cfg:        s.cfg,
		rules:      s.compiled,
		scraper:    s,
		offset:     offset(t, s.cfg.Interval),
		series:     map[string]*cachedSeries{},
		histograms: map[string]*cachedSeries{},
		symbols:    labels.NewSymbolTable(),
	}
	for i, name := range reportNames {
		b := labels.NewBuilder(t.Labels)
		b.Set(model.MetricNameLabel, name)
		l.report[i] = cachedSeries{lset: b.Labels()}
	}
	return l
}

// sameConfig reports whether a and b scrape alike.
func sameConfig(a, b Config) bool {
	if a.Interval != b.Interval || a.Timeout != b.Timeout || a.Keep != b.Keep || a.NativeHistograms != b.NativeHistograms || len(a.MetricRelabel) != len(b.MetricRelabel) {
		return false
	}
	// A rule's YAML is its whole meaning; its compiled regular
	// expression is not comparable.
	ya, errA := yaml.Marshal(a.MetricRelabel)
	yb, errB := yaml.Marshal(b.MetricRelabel)
	return errA == nil && errB == nil && bytes.Equal(ya, yb)
}

// buffer is an empty buffer from the pool.
func (s *Scraper) buffer() *bytes.Buffer {
	b, _ := s.buffers.Get().(*bytes.Buffer)
	if b == nil {
		return &bytes.Buffer{}
	}
	b.Reset()
	return b
}

func targetKey(t Target) string { return t.URL + "\xff" + t.Labels.String() }

// offset spreads the targets' scrapes over the interval, each at the same
// point of every interval, as Prometheus does.
func offset(t Target, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(targetKey(t)))
	return time.Duration(h.Sum64() % uint64(interval))
}

func newClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A scrape goes straight to its target, as Prometheus's do unless
	// configured otherwise.
	tr.Proxy = nil
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 2
	tr.IdleConnTimeout = 5 * time.Minute
	// Each kept-alive connection holds its buffers between scrapes, 8 KB
	// by default, 8 MB at 1000 targets. A request is a few hundred bytes,
	// and a page's body is read past the read buffer into the scrape's
	// own, so the buffers need only hold a request and a response's
	// header lines (a longer line is read in parts).
	tr.WriteBufferSize = 512
	tr.ReadBufferSize = 1 << 10
	return &http.Client{Transport: tr}
}
