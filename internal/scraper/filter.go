package scraper

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
)

// maxCachedNames bounds the names a filter remembers its decision for: a
// page's names repeat from scrape to scrape, but a server that invents
// new ones must not grow the agent's memory.
const maxCachedNames = 10000

// histogramSuffixes are the suffixes of a classic histogram's or a
// summary's sample lines; their TYPE line names the family without them.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// familyFilter keeps the lines of a text exposition (Prometheus's text
// format or OpenMetrics) that belong to the metric families a keep
// expression accepts. The scrapes of every target share one.
type familyFilter struct {
	keep *regexp.Regexp

	mtx sync.RWMutex
	// samples and types remember, by name, whether its sample lines and
	// its TYPE line are kept.
	samples, types map[string]bool
}

// newFamilyFilter keeps the metric names that keep, an anchored regular
// expression, matches; nil keeps every line.
func newFamilyFilter(keep *regexp.Regexp) *familyFilter {
	if keep == nil {
		return nil
	}
	return &familyFilter{keep: keep, samples: map[string]bool{}, types: map[string]bool{}}
}

var (
	typePrefix = []byte("# TYPE ")
	eofLine    = []byte("# EOF")
)

// appendKept appends to dst the lines of page that the filter keeps and
// returns it, with the count of the page's sample lines. It keeps:
//   - a sample line whose metric name is kept, or is a kept name with a
//     histogram's suffix (the sample may become part of a native
//     histogram of that name);
//   - the TYPE line of a family with a kept name or kept suffixed name;
//   - OpenMetrics' closing "# EOF", and every line whose name it cannot
//     read as bytes (a quoted UTF-8 name), for the parser to judge.
//
// HELP, UNIT and other comment lines and blank lines are dropped: no
// query reads them. A nil filter keeps the whole page.
func (f *familyFilter) appendKept(dst, page []byte) ([]byte, int) {
	samples := 0
	// The sample lines of a family follow one another (a histogram's
	// buckets, a metric's label sets): the last name's decision is
	// reused without looking it up again.
	var (
		lastName []byte
		lastKept bool
	)
	for rest := page; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		content := line
		for len(content) > 0 && (content[len(content)-1] == '\n' || content[len(content)-1] == '\r') {
			content = content[:len(content)-1]
		}
		switch {
		case len(content) == 0:
			continue
		case content[0] == '#':
			if f == nil {
				dst = append(dst, line...)
			} else if bytes.HasPrefix(content, typePrefix) {
				if name := leadingName(content[len(typePrefix):]); f.kept(name, true) {
					dst = append(dst, line...)
				}
			} else if bytes.Equal(content, eofLine) {
				dst = append(dst, line...)
			}
			continue
		}
		samples++
		if f == nil {
			dst = append(dst, line...)
			continue
		}
		name := leadingName(content)
		if name == nil {
			dst = append(dst, line...)
			continue
		}
		if !bytes.Equal(name, lastName) {
			lastName, lastKept = name, f.kept(name, false)
		}
		if lastKept {
			dst = append(dst, line...)
		}
	}
	if len(dst) > 0 && dst[len(dst)-1] != '\n' {
		dst = append(dst, '\n')
	}
	return dst, samples
}

// leadingName is the metric name at the start of b, or nil when b does
// not start with one (a quoted name, or no name at all).
func leadingName(b []byte) []byte {
	end := 0
	for end < len(b) && isNameByte(b[end], end == 0) {
		end++
	}
	if end == 0 {
		return nil
	}
	return b[:end]
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

// kept reports whether the sample lines (isType false) or the TYPE line
// (isType true) of name are kept.
func (f *familyFilter) kept(name []byte, isType bool) bool {
	decided := f.samples
	if isType {
		decided = f.types
	}
	f.mtx.RLock()
	k, ok := decided[string(name)]
	f.mtx.RUnlock()
	if ok {
		return k
	}
	k = f.decide(string(name), isType)
	f.mtx.Lock()
	if len(decided) < maxCachedNames {
		decided[string(name)] = k
	}
	f.mtx.Unlock()
	return k
}

func (f *familyFilter) decide(name string, isType bool) bool {
	if f.keep.MatchString(name) {
		return true
	}
	for _, s := range histogramSuffixes {
		if isType {
			if f.keep.MatchString(name + s) {
				return true
			}
		} else if base, ok := strings.CutSuffix(name, s); ok && f.keep.MatchString(base) {
			return true
		}
	}
	return false
}
