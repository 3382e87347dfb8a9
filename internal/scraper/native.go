package scraper

import (
	"bytes"
	"math"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/util/convertnhcb"
)

// A text page's classic histograms become native histograms with custom
// buckets here, with upstream's converter (convertnhcb), as upstream's
// parser converts them: the lines of one histogram (its _bucket, _sum and
// _count lines with the same labels but le, one after the other, under
// the family's histogram TYPE) make one sample, taken when a line of
// another series, another TYPE or the end of the page follows; a
// histogram that does not convert (buckets that are not cumulative, a
// count below the last bucket) is dropped.
//
// Upstream's parser builds the labels of every line to find where a
// histogram ends. Here a line's bytes say it: its name without the
// suffix, and its labels but le, name its histogram, whose series is
// looked up by those bytes (loop.histograms); the labels are built only
// for bytes not seen in the last two scrapes. A protocol-buffer page is
// converted by upstream's parser (appendPage).

// converter collects the lines of the histogram a page is at.
type converter struct {
	// family is the name of the last TYPE line when it says histogram,
	// nil otherwise.
	family []byte
	// native is the series of the histogram being collected, nil when
	// none is.
	native *cachedSeries
	// ts is the histogram's last line's timestamp, when it has one
	// (hasTS): a copy, as a parser's next line overwrites what it
	// returned.
	ts    int64
	hasTS bool
	temp  convertnhcb.TempHistogram
	// key is a line's bytes without its le label.
	key []byte
}

// classicPart is what a series line read under a histogram TYPE is to a
// native histogram.
type classicPart struct {
	// native is the series of the histogram the line belongs to; nil when
	// the line's name is not the family's, with or without a suffix.
	native *cachedSeries
	// part is what the line sets: a bucket's count, the sum or the count;
	// SuffixNone for a line that is no part of a histogram (an
	// OpenMetrics _created line, a bucket without a valid le), which is
	// appended as it is.
	part convertnhcb.SuffixType
	le   float64
}

// classicPart reads what the series line met, at which p is, is to a
// native histogram of family. With a nil p it reports false where it
// would have to build the line's labels: a quoted name, labels written
// unusually, a histogram not seen before.
func (l *loop) classicPart(p textparse.Parser, met, family []byte) (classicPart, bool) {
	name, _, _ := bytes.Cut(met, []byte("{"))
	if len(name) == 0 {
		return l.classicFromLabels(p, family) // a quoted name
	}
	suffix, base := histogramSuffix(name)
	if !bytes.Equal(base, family) {
		return classicPart{}, true
	}
	// The lines of one histogram share the key: the family's name and
	// the labels but le.
	key, le, hasLE, ok := withoutLE(append(l.conv.key[:0], base...), met[len(name):])
	l.conv.key = key
	if !ok {
		return l.classicFromLabels(p, family)
	}
	cp := classicPart{native: l.histograms[string(key)], part: suffix}
	if cp.native == nil {
		if p == nil {
			return classicPart{}, false
		}
		var exposed labels.Labels
		p.Labels(&exposed)
		cp.native = l.nativeSeries(exposed, string(base))
		l.histograms[string(key)] = cp.native
	}
	if suffix == convertnhcb.SuffixBucket {
		cp.part, cp.le = bound(hasLE, string(le))
	}
	return cp, true
}

// classicFromLabels reads what the series line at which p is is to a
// native histogram of family from its labels; false with a nil p.
func (l *loop) classicFromLabels(p textparse.Parser, family []byte) (classicPart, bool) {
	if p == nil {
		return classicPart{}, false
	}
	var exposed labels.Labels
	p.Labels(&exposed)
	suffix, base := convertnhcb.GetHistogramMetricBaseName(exposed.Get(model.MetricNameLabel))
	if base != string(family) {
		return classicPart{}, true
	}
	cp := classicPart{native: l.nativeSeries(exposed, base), part: suffix}
	if suffix == convertnhcb.SuffixBucket {
		cp.part, cp.le = bound(exposed.Has(labels.BucketLabel), exposed.Get(labels.BucketLabel))
	}
	return cp, true
}

// bound is the bound of a bucket whose le label, if it has one, is le,
// and SuffixBucket; SuffixNone when it has none that converts.
func bound(has bool, le string) (convertnhcb.SuffixType, float64) {
	v, err := strconv.ParseFloat(le, 64)
	if !has || err != nil || math.IsNaN(v) {
		return convertnhcb.SuffixNone, 0
	}
	return convertnhcb.SuffixBucket, v
}

// nativeSeries is the series of the native histogram named base of a line
// with labels exposed.
func (l *loop) nativeSeries(exposed labels.Labels, base string) *cachedSeries {
	nativeLabels := convertnhcb.GetHistogramMetricBase(exposed, base)
	// The key starts with a byte no line can, so it is no line's.
	key := "\x00" + nativeLabels.String()
	cs := l.series[key]
	if cs == nil {
		cs = l.newSeries(nativeLabels)
		l.series[key] = cs
	}
	return cs
}

// histogramSuffix splits a classic histogram's suffix off name, as
// convertnhcb.GetHistogramMetricBaseName does with a string: converting
// every line's name to one would allocate (531 allocations a vLLM page
// instead of 93 in BenchmarkAppendPage).
func histogramSuffix(name []byte) (convertnhcb.SuffixType, []byte) {
	for _, s := range [...]struct {
		suffix string
		t      convertnhcb.SuffixType
	}{{"_bucket", convertnhcb.SuffixBucket}, {"_sum", convertnhcb.SuffixSum}, {"_count", convertnhcb.SuffixCount}} {
		if base, ok := bytes.CutSuffix(name, []byte(s.suffix)); ok {
			return s.t, base
		}
	}
	return convertnhcb.SuffixNone, name
}

// withoutLE appends the labels of a series line, met from its name on,
// without le to dst, and returns le's value. ok is false when they do not
// read as the text formats write them.
func withoutLE(dst, met []byte) (key, le []byte, hasLE, ok bool) {
	open := bytes.IndexByte(met, '{')
	if open < 0 {
		return append(dst, met...), nil, false, true
	}
	dst = append(dst, met[:open+1]...)
	for i := open + 1; ; {
		i = skipSpace(met, i)
		if i < len(met) && met[i] == '}' {
			return append(dst, met[i:]...), le, hasLE, true
		}
		start := i
		var name []byte
		if i < len(met) && met[i] == '"' {
			end, ok := quoted(met, i)
			if !ok {
				return dst, nil, false, false
			}
			name, i = met[i+1:end-1], end
		} else {
			for i < len(met) && met[i] != '=' && met[i] != ' ' && met[i] != '\t' {
				i++
			}
			name = met[start:i]
		}
		i = skipSpace(met, i)
		if i >= len(met) || met[i] != '=' {
			return dst, nil, false, false
		}
		i = skipSpace(met, i+1)
		if i >= len(met) || met[i] != '"' {
			return dst, nil, false, false
		}
		end, ok := quoted(met, i)
		if !ok {
			return dst, nil, false, false
		}
		value := met[i+1 : end-1]
		i = skipSpace(met, end)
		if i < len(met) && met[i] == ',' {
			i++
		}
		if string(name) == labels.BucketLabel {
			le, hasLE = value, true
			continue
		}
		dst = append(dst, met[start:i]...)
	}
}

// quoted returns the index after the quoted string that starts at
// b[start], and whether it ends.
func quoted(b []byte, start int) (int, bool) {
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// ends reports whether the histogram being collected ends before a line
// that is cp to a histogram.
func (c *converter) ends(cp classicPart) bool {
	return c.native != nil && cp.native != c.native
}

// add collects line cp of a histogram, with value v and its own
// timestamp explicit, and reports whether it was one; the histogram
// collected so far must be taken first (take) when it ends.
func (c *converter) add(cp classicPart, v float64, explicit *int64) bool {
	if cp.native == nil || cp.part == convertnhcb.SuffixNone {
		return false
	}
	c.native = cp.native
	switch cp.part {
	case convertnhcb.SuffixBucket:
		_ = c.temp.SetBucketCount(cp.le, v)
	case convertnhcb.SuffixCount:
		_ = c.temp.SetCount(v)
	case convertnhcb.SuffixSum:
		_ = c.temp.SetSum(v)
	}
	c.hasTS = explicit != nil
	if c.hasTS {
		c.ts = *explicit
	}
	return true
}

// reset drops the histogram being collected and the family.
func (c *converter) reset() {
	c.temp.Reset()
	c.native, c.hasTS, c.family = nil, false, nil
}

// take returns the series of the histogram collected and its sample,
// with ok false when there is none or it does not convert (its error is
// dropped, as upstream drops it), and starts the next.
func (c *converter) take() (native *cachedSeries, explicit *int64, h *histogram.Histogram, fh *histogram.FloatHistogram, ok bool) {
	if c.native == nil {
		return nil, nil, nil, nil, false
	}
	native = c.native
	if c.hasTS {
		ts := c.ts
		explicit = &ts
	}
	h, fh, err := c.temp.Convert()
	c.temp.Reset()
	c.native, c.hasTS = nil, false
	return native, explicit, h, fh, err == nil
}
