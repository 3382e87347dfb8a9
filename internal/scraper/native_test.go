package scraper

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// TestConvertsAsUpstream reads pages with classic histograms in every
// arrangement upstream's parser has a rule for, and checks that the
// scraper appends what upstream's parser reads from them when it converts
// classic histograms, in a first scrape, a second one (from the series
// cache), and after the page changes under it.
func TestConvertsAsUpstream(t *testing.T) {
	histogram := func(name, lbls string, buckets ...string) []string {
		var out []string
		for i := 0; i+1 < len(buckets); i += 2 {
			sep := ","
			if lbls == "" {
				sep = ""
			}
			out = append(out, name+`_bucket{`+lbls+sep+`le="`+buckets[i]+`"} `+buckets[i+1])
		}
		return out
	}
	lines := func(parts ...[]string) string { return strings.Join(slices.Concat(parts...), "\n") + "\n" }
	one := func(s ...string) []string { return s }
	pages := []struct{ name, page string }{
		{"one histogram, then a gauge", lines(
			one("# HELP lat_seconds Latency.", "# TYPE lat_seconds histogram"),
			histogram("lat_seconds", `a="1"`, "0.1", "1", "1", "3", "+Inf", "4"),
			one(`lat_seconds_sum{a="1"} 2.5`, `lat_seconds_count{a="1"} 4`, "# TYPE up_now gauge", "up_now 1"))},
		{"two label sets, then the first one's sum and count", lines(
			one("# TYPE lat_seconds histogram"),
			histogram("lat_seconds", `a="1"`, "1", "3", "+Inf", "4"),
			histogram("lat_seconds", `a="2"`, "1", "5", "+Inf", "6"),
			one(`lat_seconds_sum{a="1"} 2`, `lat_seconds_count{a="1"} 4`))},
		{"without a +Inf bucket, without a count, with a count only", lines(
			one("# TYPE a_seconds histogram"),
			histogram("a_seconds", "", "1", "3"),
			one("a_seconds_count 5", "# TYPE b_seconds histogram"),
			histogram("b_seconds", "", "1", "3", "2", "4"),
			one("# TYPE c_seconds histogram", "c_seconds_count 7", "c_seconds_sum 1"))},
		{"buckets without a valid le", lines(
			one("# TYPE lat_seconds histogram"),
			histogram("lat_seconds", "", "NaN", "1", "abc", "2", "1", "3", "+Inf", "4"),
			one("lat_seconds_bucket 9", "lat_seconds_count 4"))},
		{"buckets that are not cumulative, and a count below the last", lines(
			one("# TYPE bad_seconds histogram"),
			histogram("bad_seconds", "", "1", "5", "+Inf", "3"),
			one("# TYPE short_seconds histogram"),
			histogram("short_seconds", "", "1", "1", "+Inf", "2"),
			one("short_seconds_count 1", "# TYPE after gauge", "after 1"))},
		{"fractional counts", lines(
			one("# TYPE lat_seconds histogram"),
			histogram("lat_seconds", "", "1", "1.5", "+Inf", "2.5"),
			one("lat_seconds_count 2.5", "lat_seconds_sum 3"))},
		{"a comment, a created line and a line of another name inside one", lines(
			one("# TYPE lat_seconds histogram"),
			histogram("lat_seconds", "", "1", "1"),
			one("# HELP lat_seconds Latency."),
			histogram("lat_seconds", "", "+Inf", "2"),
			one("lat_seconds_created 1700000000", "lat_seconds_count 2", "other_total 3", "lat_seconds_sum 4"))},
		{"a duplicate bucket, a plain line of the family and a TYPE name that differs", lines(
			one("# TYPE lat_seconds histogram"),
			histogram("lat_seconds", "", "1", "1", "1", "1", "+Inf", "2"),
			one(`lat_seconds{a="x"} 8`, "lat_seconds_count 2", "# TYPE named histogram"),
			histogram("other_seconds", "", "+Inf", "2"))},
		{"labels in another order, spaced, escaped, with a trailing comma", lines(
			one("# TYPE lat_seconds histogram",
				`lat_seconds_bucket{le="1",a="x\",le=\"9\"",b="2"} 1`,
				`lat_seconds_bucket{ a = "x\",le=\"9\"" , le="+Inf" , b="2", } 2`,
				`lat_seconds_count{b="2",a="x\",le=\"9\""} 2`,
				`lat_seconds_bucket{a="y",le="1"} 1`,
				`lat_seconds_count{a="y"} 1`)),
		},
		{"a quoted name", lines(
			one(`# TYPE "lat.seconds" histogram`,
				`{"lat.seconds_bucket",le="1"} 1`,
				`{"lat.seconds_bucket",le="+Inf"} 2`,
				`{"lat.seconds_count"} 2`,
				`{"lat.seconds_sum"} 3`)),
		},
		{"a histogram that ends the page", lines(
			one("# TYPE x_total counter", "x_total 1", "# TYPE lat_seconds histogram"),
			histogram("lat_seconds", `model_name="m"`, "0.5", "2", "+Inf", "3"))},
	}
	// changed is each page with every histogram family turned into a
	// gauge, and every gauge or counter into a histogram: what the cache
	// learnt of each line no longer holds.
	changed := func(page string) string {
		r := strings.NewReplacer(" histogram\n", " gauge\n", " gauge\n", " histogram\n", " counter\n", " histogram\n")
		return r.Replace(page)
	}
	for _, tc := range pages {
		t.Run(tc.name, func(t *testing.T) {
			app := &captured{}
			s, err := New(app, nil, nil, "test")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(Config{Interval: time.Hour, Timeout: time.Second, NativeHistograms: true}, []Target{{URL: "http://127.0.0.1:1/metrics"}}); err != nil {
				t.Fatal(err)
			}
			l := onlyLoop(t, s)
			for i, page := range []string{tc.page, tc.page, changed(tc.page), tc.page} {
				want := upstreamConverts(t, page)
				if len(want) == 0 {
					t.Fatalf("upstream's parser reads nothing of\n%s", page)
				}
				l.iter++
				a := app.AppenderV2(t.Context())
				counts, err := l.appendPage(a, []byte(page), "text/plain; version=0.0.4", 1000)
				if err != nil {
					t.Fatalf("scrape %d: %v", i+1, err)
				}
				if lines := sampleLines(page); counts.scraped != lines {
					t.Errorf("scrape %d: %d samples scraped, want the page's %d", i+1, counts.scraped, lines)
				}
				if err := a.Commit(); err != nil {
					t.Fatal(err)
				}
				l.evict()
				var got []string
				for _, s := range app.take() {
					if s.value != "stale" {
						got = append(got, s.labels+" = "+s.value)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("scrape %d of\n%s\nappended\n%s\nupstream's parser reads\n%s", i+1, page, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
}

// sampleLines counts the lines of page that are neither empty nor
// comments.
func sampleLines(page string) int {
	n := 0
	for line := range strings.Lines(page) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

// upstreamConverts is what upstream's parser reads from page when it
// converts classic histograms, the first sample of each series (a scrape
// takes no other), sorted.
func upstreamConverts(t *testing.T, page string) []string {
	t.Helper()
	p, err := textparse.New([]byte(page), "text/plain; version=0.0.4", labels.NewSymbolTable(), textparse.ParserOptions{ConvertClassicHistogramsToNHCB: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[string]bool{}
	add := func(lset labels.Labels, value string) {
		if !seen[lset.String()] {
			seen[lset.String()] = true
			out = append(out, lset.String()+" = "+value)
		}
	}
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var lset labels.Labels
		switch entry {
		case textparse.EntrySeries:
			_, _, v := p.Series()
			p.Labels(&lset)
			add(lset, fmt.Sprint(v))
		case textparse.EntryHistogram:
			_, _, h, fh := p.Histogram()
			p.Labels(&lset)
			if h != nil {
				add(lset, h.String())
			} else {
				add(lset, fh.String())
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestWithoutLE(t *testing.T) {
	for _, tc := range []struct {
		line, key, le string
		ok            bool
	}{
		{line: "x_bucket", key: "x_bucket", ok: true},
		{line: `x_bucket{le="1"}`, key: "x_bucket{}", le: "1", ok: true},
		{line: `x_bucket{a="1",le="+Inf",b="2"}`, key: `x_bucket{a="1",b="2"}`, le: "+Inf", ok: true},
		{line: `x_bucket{ a = "\"le=\"1" , "le" = "2" , }`, key: `x_bucket{a = "\"le=\"1" ,}`, le: "2", ok: true},
		{line: `x_bucket{le}`},
		{line: `x_bucket{le=1}`},
		{line: `x_bucket{a="1`},
	} {
		key, le, hasLE, ok := withoutLE(nil, []byte(tc.line))
		if ok != tc.ok || ok && (string(key) != tc.key || string(le) != tc.le || hasLE != (tc.le != "")) {
			t.Errorf("withoutLE(%s) = %q, %q, %v, %v; want %q, %q, %v", tc.line, key, le, hasLE, ok, tc.key, tc.le, tc.ok)
		}
	}
}
