package web

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/optiinfra/perfagent/internal/gziphttp"
)

// metricsHandler serves /metrics as promhttp does (the format and
// compression the scraper asks for, 500 when gathering fails), with the
// families of Options.PerCycle gathered and encoded once per generation
// and format rather than per scrape: at a thousand instances they are most of the
// page, and rebuilding, checking and encoding them for every scraper was
// most of the agent's CPU under load. The live families (the agent's own
// runtime and request metrics) are gathered and encoded once for the
// scrapes that arrive together, and each family is written in name order,
// so the page is the one a single registry would serve.
type metricsHandler struct {
	live       *sharedGatherer
	perCycle   disjointGatherers
	generation func() uint64
	errorf     func(format string, args ...any)
	deflater   gziphttp.Deflater

	mtx   sync.Mutex
	valid bool
	gen   uint64
	// encoded holds, per format, the per-cycle families encoded. The
	// families themselves are not kept: at a thousand instances they take
	// several times the memory of their encoding, and a generation is
	// rarely asked for in more than one or two formats.
	encoded map[expfmt.Format]*encodedFamilies
	// sizes holds, per format, how large the last encoding was.
	sizes map[expfmt.Format]int
}

// encodedFamilies are metric families encoded one after the other, in
// name order, and where each ends, so that others can be written between
// them.
type encodedFamilies struct {
	b     []byte
	names []string
	ends  []int

	mtx sync.Mutex
	// runs holds runs of b compressed for gzipped pages, by their bounds.
	runs map[[2]int]gziphttp.Deflated
}

// deflated returns b[from:to] compressed for a gzipped page, compressing
// it the first time.
func (ef *encodedFamilies) deflated(d *gziphttp.Deflater, from, to int) gziphttp.Deflated {
	ef.mtx.Lock()
	defer ef.mtx.Unlock()
	c, ok := ef.runs[[2]int{from, to}]
	if !ok {
		if ef.runs == nil {
			ef.runs = map[[2]int]gziphttp.Deflated{}
		}
		c = d.Deflate(ef.b[from:to])
		ef.runs[[2]int{from, to}] = c
	}
	return c
}

// disjointGatherers gathers the families of each, which no two of them
// share, as prometheus.Gatherers would, but without checking every series
// of each again. Should two of them have a family of the same name after
// all, prometheus.Gatherers merges them, with its checks.
type disjointGatherers []prometheus.Gatherer

// Gather implements prometheus.Gatherer.
func (gs disjointGatherers) Gather() ([]*dto.MetricFamily, error) {
	var (
		all  []*dto.MetricFamily
		errs prometheus.MultiError
	)
	for _, g := range gs {
		mfs, err := g.Gather()
		errs.Append(err)
		all = append(all, mfs...)
	}
	slices.SortFunc(all, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	for i := 1; i < len(all); i++ {
		if all[i].GetName() == all[i-1].GetName() {
			return prometheus.Gatherers(gs).Gather()
		}
	}
	return all, errs.MaybeUnwrap()
}

// TextFamilies is implemented by a per-cycle gatherer (Options.PerCycle)
// that writes its families in Prometheus's text format itself, where a
// Gather builds client_model structures for every series only for the
// encoder to read them once: at a thousand instances the signals and the
// settings are 43,000 series, and those structures were most of what
// gathering them allocated.
type TextFamilies interface {
	// TextFamilies returns the names of the families Gather would return
	// now and a function that appends the i-th of them to b as expfmt
	// writes it in the text format, whatever the escaping scheme. ok is
	// false when it cannot (a name a scheme would change): the page is
	// gathered then.
	TextFamilies() (names []string, appendFamily func(b []byte, i int) []byte, ok bool)
}

// encode gathers the families of gs and encodes them in format into a
// buffer of about size bytes (encodeFamilies). The text format is
// written by those that implement TextFamilies themselves, interleaved
// in name order with the others' families.
func (gs disjointGatherers) encode(format expfmt.Format, size int) (*encodedFamilies, error) {
	if format.FormatType() != expfmt.TypeTextPlain {
		return gs.gatherAndEncode(format, size)
	}
	// A family is gathered (mf) or written as text (appendText).
	type family struct {
		name       string
		mf         *dto.MetricFamily
		appendText func(b []byte) []byte
	}
	var (
		families []family
		errs     prometheus.MultiError
	)
	for _, g := range gs {
		if tf, ok := g.(TextFamilies); ok {
			if names, appendFamily, ok := tf.TextFamilies(); ok {
				for i, name := range names {
					families = append(families, family{name: name, appendText: func(b []byte) []byte { return appendFamily(b, i) }})
				}
				continue
			}
		}
		mfs, err := g.Gather()
		errs.Append(err)
		for _, mf := range mfs {
			families = append(families, family{name: mf.GetName(), mf: mf})
		}
	}
	if err := errs.MaybeUnwrap(); err != nil {
		return nil, err
	}
	slices.SortFunc(families, func(a, b family) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(families); i++ {
		if families[i].name == families[i-1].name {
			return gs.gatherAndEncode(format, size)
		}
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+size/16))
	enc := expfmt.NewEncoder(buf, format)
	ef := &encodedFamilies{names: make([]string, len(families)), ends: make([]int, len(families))}
	for i, f := range families {
		if f.mf != nil {
			if err := enc.Encode(f.mf); err != nil {
				return nil, fmt.Errorf("encoding metric family %s: %w", f.name, err)
			}
		} else {
			buf.Write(f.appendText(buf.AvailableBuffer()))
		}
		ef.names[i], ef.ends[i] = f.name, buf.Len()
	}
	ef.b = fitted(buf.Bytes())
	return ef, nil
}

// gatherAndEncode gathers the families of gs and encodes them in format.
func (gs disjointGatherers) gatherAndEncode(format expfmt.Format, size int) (*encodedFamilies, error) {
	mfs, err := gs.Gather()
	if err != nil {
		return nil, err
	}
	return encodeFamilies(mfs, format, size)
}

// cycleFamilies returns the per-cycle families of the current generation
// encoded in format, gathering and encoding them if needed.
func (h *metricsHandler) cycleFamilies(format expfmt.Format) (*encodedFamilies, error) {
	// The generation is read before gathering: families newer than the
	// generation they are kept under are replaced at its next change,
	// while the other order could serve an old state for a whole cycle.
	gen := h.generation()
	h.mtx.Lock()
	defer h.mtx.Unlock()
	if !h.valid || h.gen != gen {
		h.gen, h.valid = gen, true
		h.encoded = map[expfmt.Format]*encodedFamilies{}
	}
	if ef, ok := h.encoded[format]; ok {
		return ef, nil
	}
	ef, err := h.perCycle.encode(format, h.sizes[format])
	if err != nil {
		return nil, err
	}
	h.encoded[format] = ef
	if h.sizes == nil {
		h.sizes = map[expfmt.Format]int{}
	}
	h.sizes[format] = len(ef.b)
	return ef, nil
}

// encodeFamilies encodes mfs, in name order, in format, into a buffer of
// about size bytes: the size of the same page a cycle before, so that a
// page of megabytes is neither grown in steps nor copied to fit at the
// end, which allocated three times its size at every cycle.
func encodeFamilies(mfs []*dto.MetricFamily, format expfmt.Format, size int) (*encodedFamilies, error) {
	buf := bytes.NewBuffer(make([]byte, 0, size+size/16))
	enc := expfmt.NewEncoder(buf, format)
	ef := &encodedFamilies{}
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, fmt.Errorf("encoding metric family %s: %w", mf.GetName(), err)
		}
		ef.names = append(ef.names, mf.GetName())
		ef.ends = append(ef.ends, buf.Len())
	}
	ef.b = fitted(buf.Bytes())
	return ef, nil
}

// fitted returns b, copied to fit when it grew past the size it was
// given, or shrank well below it, rather than kept with its spare
// capacity.
func fitted(b []byte) []byte {
	if cap(b)-len(b) > len(b)/8 {
		return bytes.Clone(b)
	}
	return b
}

// start is where the i-th family begins.
func (ef *encodedFamilies) start(i int) int {
	if i == 0 {
		return 0
	}
	return ef.ends[i-1]
}

// writeInOrder writes the families of a and b, which share no name, in
// name order: each run of one's families between two of the other's at
// once.
func writeInOrder(write func(ef *encodedFamilies, from, to int) error, a, b *encodedFamilies) error {
	i, j := 0, 0
	for i < len(a.names) || j < len(b.names) {
		if j == len(b.names) || (i < len(a.names) && a.names[i] < b.names[j]) {
			k := i + 1
			for k < len(a.names) && (j == len(b.names) || a.names[k] < b.names[j]) {
				k++
			}
			if err := write(a, a.start(i), a.ends[k-1]); err != nil {
				return err
			}
			i = k
			continue
		}
		a, b, i, j = b, a, j, i
	}
	return nil
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	cycleEnc, cycleErr := h.cycleFamilies(format)
	live := h.live.gather()
	if err := firstError(live.err, cycleErr); err != nil {
		h.fail(w, err)
		return
	}
	liveEnc, err := live.encoded(format)
	if err != nil {
		h.fail(w, err)
		return
	}
	names := make(map[string]bool, len(liveEnc.names))
	for _, name := range liveEnc.names {
		names[name] = true
	}
	for _, name := range cycleEnc.names {
		if names[name] {
			h.serveMerged(w, r, format, live.mfs)
			return
		}
	}
	// Errors writing the page are the client's going away, not the
	// agent's: they end the answer and nothing else.
	setHeaders(w, format)
	write := func(ef *encodedFamilies, from, to int) error {
		_, err := w.Write(ef.b[from:to])
		return err
	}
	if gziphttp.Accepts(r) {
		// Runs are compressed once, the per-cycle ones once a cycle and
		// the live ones once a gathering, which concurrent scrapes share:
		// at a thousand instances compressing the whole page for every
		// scrape took a core under load.
		w.Header().Set("Content-Encoding", "gzip")
		zs := gziphttp.NewStream(w)
		defer zs.Close()
		write = func(ef *encodedFamilies, from, to int) error {
			return zs.WriteDeflated(ef.deflated(&h.deflater, from, to))
		}
	}
	_ = writeInOrder(write, cycleEnc, liveEnc)
}

// serveMerged serves the families of a scrape in which a family is both
// live and per cycle: they are merged with the checks a single registry
// makes (a duplicate series fails), and encoded together.
func (h *metricsHandler) serveMerged(w http.ResponseWriter, r *http.Request, format expfmt.Format, live []*dto.MetricFamily) {
	mfs, err := append(prometheus.Gatherers{
		prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return live, nil }),
	}, h.perCycle...).Gather()
	if err != nil {
		h.fail(w, err)
		return
	}
	out, done := h.body(w, r, format)
	defer done()
	enc := expfmt.NewEncoder(out, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return
		}
	}
}

// body sets the headers of a page in format and returns where to write
// it, gzipped when the client accepts it, and what to call when it is
// written.
func (h *metricsHandler) body(w http.ResponseWriter, r *http.Request, format expfmt.Format) (io.Writer, func()) {
	setHeaders(w, format)
	if !gziphttp.Accepts(r) {
		return w, func() {}
	}
	w.Header().Set("Content-Encoding", "gzip")
	gz := gzipWriters.Get().(*gzip.Writer)
	gz.Reset(w)
	return gz, func() {
		_ = gz.Close()
		gzipWriters.Put(gz)
	}
}

// setHeaders sets the headers of a page in format but its encoding.
func setHeaders(w http.ResponseWriter, format expfmt.Format) {
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Accept-Encoding")
	w.Header().Set("Content-Type", string(format))
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// fail answers as promhttp's HTTPErrorOnError does.
func (h *metricsHandler) fail(w http.ResponseWriter, err error) {
	h.errorf("Error gathering metrics: %v", err)
	http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
}

var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return gz
}}

// sharedGatherer gathers g for concurrent callers together: a call waits
// for the gathering under way, if any, and shares the one after it with
// every call that arrived meanwhile. Each call gets what was gathered
// after it began, as if it had gathered alone, but under many concurrent
// scrapes g is gathered one at a time (reading /proc for the process
// metrics costs about as much as writing a page). The families are shared:
// callers must not modify them.
type sharedGatherer struct {
	g prometheus.Gatherer

	mtx     sync.Mutex
	running bool
	next    *gathering
}

type gathering struct {
	done chan struct{}
	mfs  []*dto.MetricFamily
	err  error

	mtx sync.Mutex
	// enc holds the families encoded per format, for the scrapes that
	// share the gathering: encoding them took more of a scrape than
	// writing the whole page.
	enc map[expfmt.Format]*encodedFamilies
}

// encoded returns the gathered families encoded in format, encoding them
// the first time.
func (g *gathering) encoded(format expfmt.Format) (*encodedFamilies, error) {
	g.mtx.Lock()
	defer g.mtx.Unlock()
	if ef, ok := g.enc[format]; ok {
		return ef, nil
	}
	ef, err := encodeFamilies(g.mfs, format, 0)
	if err != nil {
		return nil, err
	}
	if g.enc == nil {
		g.enc = map[expfmt.Format]*encodedFamilies{}
	}
	g.enc[format] = ef
	return ef, nil
}

// gather returns the gathering that began after the call, shared with the
// calls that arrived meanwhile.
func (s *sharedGatherer) gather() *gathering {
	s.mtx.Lock()
	if s.next == nil {
		s.next = &gathering{done: make(chan struct{})}
	}
	g := s.next
	if !s.running {
		s.running, s.next = true, nil
		s.mtx.Unlock()
		s.run(g)
	} else {
		s.mtx.Unlock()
	}
	<-g.done
	return g
}

// run gathers for g, then starts the gathering the calls that arrived
// meanwhile wait for.
func (s *sharedGatherer) run(g *gathering) {
	g.mfs, g.err = s.g.Gather()
	close(g.done)
	s.mtx.Lock()
	defer s.mtx.Unlock()
	if next := s.next; next != nil {
		s.next = nil
		go s.run(next)
		return
	}
	s.running = false
}
