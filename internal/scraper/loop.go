package scraper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// maxPageBytes is the largest page read: a model server's is at most a
// few hundred kilobytes, and a server that sends more is not trusted with
// the agent's memory.
const maxPageBytes = 64 << 20

// acceptHeader asks for Prometheus's text format, which every engine
// serves; the filter reads OpenMetrics too, should a server send it.
const acceptHeader = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

// loop scrapes one target on its clock.
type loop struct {
	target  Target
	cfg     Config
	rules   *scrapeRules
	scraper *Scraper
	offset  time.Duration

	cancel context.CancelFunc
	done   chan struct{}

	mtx    sync.Mutex
	health Health

	// What follows belongs to the running scrape: the loop's goroutine,
	// or stop once that has ended.
	//
	// series caches, by its bytes as the page writes it (seriesKey), each
	// series seen in the last two scrapes: its labels and reference, or
	// that it is dropped.
	series map[string]*cachedSeries
	// key is the buffer seriesKey writes a key into.
	key []byte
	// iter counts the scrapes; live is the scrape whose series are
	// current (they get staleness markers when they disappear), 0 when
	// none are.
	iter, live uint64
	report     [len(reportNames)]cachedSeries
	symbols    *labels.SymbolTable
	// histograms are the series of the native histograms converted from
	// classic ones, by the bytes of their lines without le (native.go).
	histograms map[string]*cachedSeries
	conv       converter
	// req is every scrape's request, built by the first (fetch), as
	// Prometheus's scrape loop keeps its own.
	req *http.Request
	// contentType is the last page's Content-Type, mediaType the media
	// type parsed from it: a server sends the same one every time.
	contentType, mediaType string
}

type cachedSeries struct {
	ref     storage.SeriesRef
	lset    labels.Labels
	dropped bool
	// explicit is set for a sample with its own timestamp: as in
	// Prometheus, such a series gets no staleness marker.
	explicit bool
	seen     uint64
	// used, for a native histogram converted from a classic one, is the
	// last scrape that read one of its lines: the series is kept while
	// they are (evict).
	used uint64
}

// reportNames are the series every scrape writes about itself, as
// Prometheus's do.
var reportNames = [...]string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

func (l *loop) start(ctx context.Context) {
	if l.cancel != nil {
		return
	}
	ctx, l.cancel = context.WithCancel(ctx)
	l.done = make(chan struct{})
	go l.run(ctx)
}

// stop ends the loop and, with stale, marks its series stale.
func (l *loop) stop(stale bool) {
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
	if !stale || l.iter == 0 {
		return
	}
	app := l.scraper.app.AppenderV2(context.Background())
	ts := time.Now().UnixMilli()
	l.markStale(app, ts, false)
	for i := range l.report {
		if l.report[i].ref != 0 {
			l.appendStale(app, &l.report[i], ts)
		}
	}
	if err := app.Commit(); err != nil {
		l.scraper.logger.Warn("Marking a removed target's series stale failed", "target", l.target.URL, "err", err)
	}
}

func (l *loop) run(ctx context.Context) {
	defer close(l.done)
	interval := l.cfg.Interval
	now := time.Now()
	next := now.Truncate(interval).Add(l.offset)
	if next.Before(now) {
		next = next.Add(interval)
	}
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		l.scraper.workers.do(ctx, func() { l.scrapeOnce(ctx, time.Now()) })
		// A scrape that overran its slot skips the slots it missed.
		for now := time.Now(); !next.After(now); {
			next = next.Add(interval)
		}
		timer.Reset(time.Until(next))
	}
}

// scrapeOnce scrapes the page at ts and appends what it keeps, with the
// scrape's own series.
func (l *loop) scrapeOnce(ctx context.Context, ts time.Time) {
	l.iter++
	m := l.scraper.metrics
	buf := l.scraper.buffer()
	defer l.scraper.buffers.Put(buf)

	sctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	contentType, err := l.fetch(sctx, buf)
	cancel()
	if ctx.Err() != nil {
		return // stopping: the scrape's outcome no longer matters
	}
	app := l.scraper.app.AppenderV2(ctx)
	t := ts.UnixMilli()
	var counts appendCounts
	if err == nil {
		counts, err = l.appendPage(app, buf.Bytes(), contentType, t)
		if err != nil {
			if rerr := app.Rollback(); rerr != nil {
				err = errors.Join(err, rerr)
			}
			app = l.scraper.app.AppenderV2(ctx)
		}
	}
	if err != nil {
		l.markStale(app, t, true)
		l.live = 0
		counts = appendCounts{}
	}
	duration := time.Since(ts)
	up := 1.0
	if err != nil {
		up = 0
	}
	for i, v := range [...]float64{up, duration.Seconds(), float64(counts.scraped), float64(counts.appended), float64(counts.added)} {
		l.appendReport(app, &l.report[i], t, v)
	}
	if cerr := app.Commit(); cerr != nil && err == nil {
		err = fmt.Errorf("writing the samples: %w", cerr)
	}
	l.evict()

	outcome := "success"
	if err != nil {
		outcome = "error"
	}
	m.scrapes.WithLabelValues(outcome).Inc()
	m.duration.Observe(duration.Seconds())
	l.mtx.Lock()
	l.health.LastScrape, l.health.LastScrapeDuration, l.health.LastError = ts, duration, err
	l.health.Health = HealthGood
	if err != nil {
		l.health.Health = HealthBad
	}
	l.mtx.Unlock()
}

// fetch reads the page into buf and returns its content type.
func (l *loop) fetch(ctx context.Context, buf *bytes.Buffer) (string, error) {
	if l.req == nil {
		req, err := http.NewRequest(http.MethodGet, l.target.URL, nil)
		if err != nil {
			return "", fmt.Errorf("building the request: %w", err)
		}
		req.Header.Set("Accept", acceptHeader)
		req.Header.Set("User-Agent", l.scraper.userAgent)
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(l.cfg.Timeout.Seconds(), 'f', -1, 64))
		l.req = req
	}
	resp, err := l.scraper.client.Do(l.req.WithContext(ctx))
	if err != nil {
		return "", err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("server returned HTTP status %s", resp.Status)
	}
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, maxPageBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the page: %w", err)
	}
	if n > maxPageBytes {
		return "", fmt.Errorf("the page is larger than %d bytes", maxPageBytes)
	}
	return resp.Header.Get("Content-Type"), nil
}

type appendCounts struct{ scraped, appended, added int }

// appendPage appends the kept samples of page, then staleness markers for
// the series of the previous scrape that it lacks.
func (l *loop) appendPage(app storage.AppenderV2, page []byte, contentType string, t int64) (appendCounts, error) {
	var (
		counts appendCounts
		// text pages are filtered, and their samples counted, before
		// they are parsed; the parser reads any other whole.
		text bool
		// conv turns a text page's classic histograms into native ones
		// (native.go); nil when they are kept or the page is not text.
		conv *converter
	)
	if contentType != l.contentType {
		l.contentType = contentType
		l.mediaType, _, _ = mime.ParseMediaType(contentType)
	}
	mediaType := l.mediaType
	if mediaType != "application/vnd.google.protobuf" {
		text = true
		kept := l.scraper.buffer()
		defer l.scraper.buffers.Put(kept)
		var b []byte
		b, counts.scraped = l.rules.filter.appendKept(kept.AvailableBuffer(), page)
		kept.Write(b)
		page = kept.Bytes()
		if l.cfg.NativeHistograms {
			conv = &l.conv
			// What a failed page left is dropped, and nothing is kept of
			// the page's bytes.
			defer conv.reset()
		}
	}
	if mediaType == "text/plain" {
		done, err := l.appendSeen(app, page, t, conv, &counts)
		if err != nil {
			return counts, err
		}
		if done {
			l.markStale(app, t, false)
			l.live = l.iter
			return counts, nil
		}
		// The parser reads the page from its start; the samples already
		// appended are the scrape's (appendSample), and not appended again.
		if conv != nil {
			conv.reset()
		}
	}
	var under byte // typeKey of the last TYPE line
	p, err := textparse.New(page, contentType, l.symbols, textparse.ParserOptions{
		ConvertClassicHistogramsToNHCB: l.cfg.NativeHistograms && conv == nil,
		FallbackContentType:            "text/plain",
	})
	if p == nil {
		return counts, fmt.Errorf("reading the page: %w", err)
	}
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return counts, fmt.Errorf("parsing the page: %w", err)
		}
		var (
			met []byte
			tp  *int64
			v   float64
			h   *histogram.Histogram
			fh  *histogram.FloatHistogram
		)
		switch entry {
		case textparse.EntrySeries:
			met, tp, v = p.Series()
		case textparse.EntryHistogram:
			met, tp, h, fh = p.Histogram()
		default:
			var name []byte
			var mtype model.MetricType
			if entry == textparse.EntryType {
				name, mtype = p.Type()
				under = typeKey(mtype)
			}
			if conv == nil {
				continue
			}
			// Any other line ends a histogram, as in upstream's parser.
			if err := l.takeNative(app, conv, t, &counts); err != nil {
				return counts, err
			}
			if entry == textparse.EntryType {
				conv.family = nil
				if mtype == model.MetricTypeHistogram {
					conv.family = name
				}
			}
			continue
		}
		if !text {
			counts.scraped++
		}
		if _, err := l.appendLine(app, p, conv, line{met: met, under: under, explicit: tp, v: v, h: h, fh: fh}, t, &counts); err != nil {
			return counts, err
		}
	}
	if conv != nil {
		if err := l.takeNative(app, conv, t, &counts); err != nil {
			return counts, err
		}
	}
	l.markStale(app, t, false)
	l.live = l.iter
	return counts, nil
}

// line is a page's sample line as read: its series' bytes as the page
// writes them, the typeKey of the TYPE line it is under, its own
// timestamp if it has one, and its value.
type line struct {
	met      []byte
	under    byte
	explicit *int64
	v        float64
	h        *histogram.Histogram
	fh       *histogram.FloatHistogram
}

// appendLine appends the sample of ln, or collects it into the native
// histogram conv is converting. p is the parser at ln; with a nil p,
// appendLine reads only what the cache holds, and reports false, having
// appended nothing, where it would have to build the line's labels.
func (l *loop) appendLine(app storage.AppenderV2, p textparse.Parser, conv *converter, ln line, t int64, counts *appendCounts) (bool, error) {
	if conv != nil {
		var cp classicPart
		if conv.family != nil {
			var ok bool
			if cp, ok = l.classicPart(p, ln.met, conv.family); !ok {
				return false, nil
			}
		}
		if conv.ends(cp) {
			if err := l.takeNative(app, conv, t, counts); err != nil {
				return true, err
			}
		}
		if cp.native != nil {
			cp.native.used = l.iter
		}
		if conv.add(cp, ln.v, ln.explicit) {
			return true, nil
		}
	}
	key := l.seriesKey(ln)
	cs, ok := l.series[string(key)]
	if !ok {
		if p == nil {
			return false, nil
		}
		var exposed labels.Labels
		p.Labels(&exposed)
		cs = l.newSeries(exposed)
		l.series[string(key)] = cs
	}
	return true, l.appendSample(app, cs, ln.explicit, t, ln.v, ln.h, ln.fh, counts)
}

// typeKey is the byte that starts the cache key of the series lines
// under a TYPE line of type t, where upstream's parsers build other labels
// from the same bytes: they write the value of le under a histogram TYPE,
// and of quantile under a summary one, as a float in one form. It is zero,
// for no byte, under any other type.
func typeKey(t model.MetricType) byte {
	switch t {
	case model.MetricTypeHistogram:
		return 1
	case model.MetricTypeSummary:
		return 2
	}
	return 0
}

// seriesKey is the cache key of ln's series: its bytes, after its
// typeKey when that is not zero. No line starts with a control byte, so
// the keys of one set of bytes under different types differ.
func (l *loop) seriesKey(ln line) []byte {
	if ln.under == 0 {
		return ln.met
	}
	l.key = append(append(l.key[:0], ln.under), ln.met...)
	return l.key
}

// takeNative appends the native histogram conv collected, if any.
func (l *loop) takeNative(app storage.AppenderV2, conv *converter, t int64, counts *appendCounts) error {
	if native, explicit, h, fh, ok := conv.take(); ok {
		return l.appendSample(app, native, explicit, t, 0, h, fh, counts)
	}
	return nil
}

// appendSample appends a sample of cs at its own time, explicit, or at
// t, unless the page had cs already.
func (l *loop) appendSample(app storage.AppenderV2, cs *cachedSeries, explicit *int64, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, counts *appendCounts) error {
	if cs.seen == l.iter {
		return nil // a duplicate line: the first one counts
	}
	cs.seen = l.iter
	if cs.dropped {
		return nil
	}
	cs.explicit = explicit != nil
	if explicit != nil {
		t = *explicit
	}
	added := cs.ref == 0
	ref, err := app.Append(cs.ref, cs.lset, 0, t, v, h, fh, storage.AOptions{})
	if err != nil {
		if rejected(err) {
			l.scraper.metrics.rejected.Inc()
			return nil
		}
		return fmt.Errorf("appending %s: %w", cs.lset, err)
	}
	cs.ref = ref
	counts.appended++
	if added {
		counts.added++
	}
	return nil
}

// newSeries is the series of a page's labels exposed, with the target's
// labels, after the metric relabelling rules.
func (l *loop) newSeries(exposed labels.Labels) *cachedSeries {
	b := labels.NewBuilder(exposed)
	l.target.Labels.Range(func(tl labels.Label) {
		if v := exposed.Get(tl.Name); v != "" {
			b.Set(model.ExportedLabelPrefix+tl.Name, v)
		}
		b.Set(tl.Name, tl.Value)
	})
	if l.rules.keep != nil && !l.rules.keep.MatchString(b.Get(model.MetricNameLabel)) {
		return &cachedSeries{dropped: true}
	}
	if !relabel.ProcessBuilder(b, l.cfg.MetricRelabel...) {
		return &cachedSeries{dropped: true}
	}
	return &cachedSeries{lset: b.Labels()}
}

// markStale appends a staleness marker for every series of the live
// scrape that the current one did not have or, when the current one
// failed (failed), for every series of either.
func (l *loop) markStale(app storage.AppenderV2, t int64, failed bool) {
	for _, cs := range l.series {
		// A series the current scrape had was seen by it; one of the live
		// scrape's that it lacks was not.
		stale := l.live != 0 && cs.seen == l.live || failed && cs.seen == l.iter
		if stale && !cs.dropped && !cs.explicit && cs.ref != 0 {
			l.appendStale(app, cs, t)
		}
	}
}

func (l *loop) appendStale(app storage.AppenderV2, cs *cachedSeries, t int64) {
	// Rejections are expected here: a series the page wrote with a newer
	// timestamp than the marker's.
	if _, err := app.Append(cs.ref, cs.lset, 0, t, math.Float64frombits(value.StaleNaN), nil, nil, storage.AOptions{}); err != nil && !rejected(err) {
		l.scraper.logger.Debug("Marking a series stale failed", "series", cs.lset, "err", err)
	}
}

func (l *loop) appendReport(app storage.AppenderV2, cs *cachedSeries, t int64, v float64) {
	ref, err := app.Append(cs.ref, cs.lset, 0, t, v, nil, nil, storage.AOptions{})
	if err != nil {
		l.scraper.logger.Debug("Appending a scrape's own series failed", "series", cs.lset, "err", err)
		return
	}
	cs.ref = ref
}

// evict forgets the series neither of the last two scrapes had.
func (l *loop) evict() {
	for k, cs := range l.series {
		if max(cs.seen, cs.used)+1 < l.iter {
			delete(l.series, k)
		}
	}
	for k, cs := range l.histograms {
		if max(cs.seen, cs.used)+1 < l.iter {
			delete(l.histograms, k)
		}
	}
}

func (l *loop) currentHealth() Health {
	l.mtx.Lock()
	defer l.mtx.Unlock()
	return l.health
}

// rejected reports whether err refuses one sample, as a scrape expects
// some to be (out of order, duplicate, too old), rather than the write.
func rejected(err error) bool {
	return errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrDuplicateSampleForTimestamp) ||
		errors.Is(err, storage.ErrOutOfBounds) || errors.Is(err, storage.ErrTooOldSample)
}
