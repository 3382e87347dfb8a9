package scraper

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// A page in Prometheus's text format is mostly the lines of the scrape
// before with new values. Upstream's parser lexes each line byte by byte,
// labels included, before the series cache is looked up by the line's
// bytes; that was about 7 % of the agent's CPU beside 1000 servers.
// appendSeen reads a line's series bytes, value and timestamp by
// splitting it, and looks the series up; only where that falls short (a
// series not cached, anything written unusually) does the parser read the
// page. What appendSeen reads, it reads as the parser does: it takes a
// line only in the strict form whose tokens upstream's lexer would find
// in the same places, and the cache holds only series bytes the parser
// returned.

// appendSeen appends the samples of page, a filtered page in Prometheus's
// text format, as appendPage would, when every one of its series is
// cached. It reports false at the first line it cannot read so, having
// appended the samples before it: the parser then reads the page again,
// and appendSample skips what this scrape appended already.
func (l *loop) appendSeen(app storage.AppenderV2, page []byte, t int64, conv *converter, counts *appendCounts) (bool, error) {
	var under byte // typeKey of the last TYPE line
	for rest := page; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return false, nil // the parser's to judge: filtered pages end with a line break
		}
		text := rest[:i]
		rest = rest[i+1:]
		if len(text) == 0 {
			continue
		}
		if text[0] == '#' {
			family, ok := readComment(text)
			if !ok {
				return false, nil
			}
			if family.isType {
				under = typeKey(family.mtype)
			}
			if conv == nil {
				continue
			}
			if err := l.takeNative(app, conv, t, counts); err != nil {
				return false, err
			}
			if family.isType {
				conv.family = family.histogram
			}
			continue
		}
		ln, ok := readSample(text)
		if !ok {
			return false, nil
		}
		ln.under = under
		if ok, err := l.appendLine(app, nil, conv, ln, t, counts); !ok || err != nil {
			return false, err
		}
	}
	if conv != nil {
		if err := l.takeNative(app, conv, t, counts); err != nil {
			return false, err
		}
	}
	return true, nil
}

// comment is what a comment line says of the family after it.
type comment struct {
	// isType is set for a TYPE line, of type mtype; histogram is its
	// family's name when the type is histogram.
	isType    bool
	mtype     model.MetricType
	histogram []byte
}

// readComment reads a line that starts with '#'. It reads a TYPE line only
// as "# TYPE name type" with single spaces and a name that needs no
// quotes, and a HELP line only as "# HELP name text" with text in UTF-8;
// ok is false for any other form of either, which upstream's parser may
// read otherwise or refuse, and for a line with a NUL byte, at which its
// lexer may end the page. Other comments say nothing.
func readComment(text []byte) (comment, bool) {
	if bytes.IndexByte(text, 0) >= 0 {
		return comment{}, false
	}
	rest := text[1:]
	i := skipSpace(rest, 0)
	if i == 0 {
		return comment{}, true // "#" then no space: a comment
	}
	rest = rest[i:]
	var keyword []byte
	for _, k := range [...][]byte{[]byte("TYPE"), []byte("HELP")} {
		if bytes.HasPrefix(rest, k) && len(rest) > len(k) && (rest[len(k)] == ' ' || rest[len(k)] == '\t') {
			keyword = k
		}
	}
	if keyword == nil {
		return comment{}, true
	}
	if i != 1 || rest[len(keyword)] != ' ' {
		return comment{}, false
	}
	rest = rest[len(keyword)+1:]
	name := leadingName(rest)
	if name == nil || len(rest) < len(name)+2 || rest[len(name)] != ' ' {
		return comment{}, false
	}
	after := rest[len(name)+1:]
	if keyword[0] == 'H' {
		return comment{}, utf8.Valid(after)
	}
	// Each case names its type: converting after to one would allocate.
	switch string(after) {
	case "histogram":
		return comment{isType: true, mtype: model.MetricTypeHistogram, histogram: name}, true
	case "counter":
		return comment{isType: true, mtype: model.MetricTypeCounter}, true
	case "gauge":
		return comment{isType: true, mtype: model.MetricTypeGauge}, true
	case "summary":
		return comment{isType: true, mtype: model.MetricTypeSummary}, true
	case "untyped":
		return comment{isType: true, mtype: model.MetricTypeUnknown}, true
	}
	return comment{}, false
}

// readSample reads a sample line written as a plain metric name, its
// labels in braces if any, then space, the value and, after more space,
// its timestamp in milliseconds; ok is false for any other form.
func readSample(text []byte) (line, bool) {
	name := leadingName(text)
	if name == nil {
		return line{}, false
	}
	end := len(name)
	if end < len(text) && text[end] == '{' {
		closing := labelsEnd(text, end+1)
		if closing < 0 {
			return line{}, false
		}
		end = closing + 1
	}
	ln := line{met: text[:end]}
	i := skipSpace(text, end)
	if i == end {
		return line{}, false
	}
	j := i
	for j < len(text) && text[j] != ' ' && text[j] != '\t' {
		j++
	}
	v, ok := parseValue(text[i:j])
	if !ok {
		return line{}, false
	}
	ln.v = v
	i = skipSpace(text, j)
	if i == len(text) {
		return ln, true
	}
	j = i
	for j < len(text) && text[j] >= '0' && text[j] <= '9' {
		j++
	}
	if j == i || skipSpace(text, j) != len(text) {
		return line{}, false
	}
	ts, err := strconv.ParseInt(string(text[i:j]), 10, 64)
	if err != nil {
		return line{}, false
	}
	ln.explicit = &ts
	return ln, true
}

// labelsEnd is the index of the brace that closes the labels starting at
// b[start], or -1.
func labelsEnd(b []byte, start int) int {
	for i := start; i < len(b); i++ {
		switch b[i] {
		case '"':
			end, ok := quoted(b, i)
			if !ok {
				return -1
			}
			i = end - 1
		case '}':
			return i
		}
	}
	return -1
}

// parseValue reads a sample's value as upstream's text parser does: Go's
// float syntax without its later additions (hexadecimal mantissas with
// p exponents, digit separators), NaN as Prometheus's one NaN.
func parseValue(b []byte) (float64, bool) {
	if bytes.ContainsAny(b, "pP_") {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, false
	}
	if math.IsNaN(v) {
		v = math.Float64frombits(value.NormalNaN)
	}
	return v, true
}
