package scraper

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// upstreamLine is what upstream's text parser reads from a page of one
// line: the first entry, or the error.
func upstreamLine(text string) (entry textparse.Entry, p textparse.Parser, err error) {
	p, err = textparse.New([]byte(text+"\n"), "text/plain; version=0.0.4", labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		return 0, nil, err
	}
	entry, err = p.Next()
	return entry, p, err
}

// TestReadsSamplesAsTheParser checks that a sample line the fast path
// reads, upstream's parser reads alike: the same series bytes, value and
// timestamp. Lines the fast path leaves to the parser may be valid or
// not; the common forms must not be left.
func TestReadsSamplesAsTheParser(t *testing.T) {
	for _, tc := range []struct {
		text string
		fast bool
	}{
		{"up 1", true},
		{"up 1.5e-3 1700000000000", true},
		{`lat_seconds_bucket{le="+Inf",model_name="m"} 4`, true},
		{`x{a="}",b="\"}\\"} -2`, true},
		{"x{} 3", true},
		{"x\t\t7\t", true},
		{"x 7 12 ", true},
		{"x NaN", true},
		{"x +Inf", true},
		{"x -inf", true},
		{"x 0x10", false},
		{"x 0x1p-2", false},
		{"x 1_000", false},
		{"x 1e999", false},
		{"x 1 -5", false},
		{"x 1 +5", false},
		{"x 1 99999999999999999999", false},
		{"x 1 2 3", false},
		{"x 1 12a", false},
		{"x1{a=\"b\"}1", false},
		{`x {a="b"} 1`, false},
		{" x 1", false},
		{"x", false},
		{"x ", false},
		{`x{a="b} 1`, false},
		{`{"x.y"} 1`, false},
		{"x 1{", false},
		{"x 1\r", false},
		{"x\x00 1", false},
	} {
		t.Run(tc.text, func(t *testing.T) {
			ln, ok := readSample([]byte(tc.text))
			if ok != tc.fast {
				t.Errorf("read by the fast path: %v, want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			entry, p, err := upstreamLine(tc.text)
			if err != nil || entry != textparse.EntrySeries {
				t.Fatalf("the fast path reads it, upstream's parser: %v, %v", entry, err)
			}
			met, ts, v := p.Series()
			if string(met) != string(ln.met) || math.Float64bits(v) != math.Float64bits(ln.v) || (ts == nil) != (ln.explicit == nil) || ts != nil && *ts != *ln.explicit {
				t.Errorf("read %q %v %v, upstream's parser %q %v %v", ln.met, ln.v, ln.explicit, met, v, ts)
			}
		})
	}
}

// TestReadsCommentsAsTheParser checks the comment lines the fast path
// reads against upstream's parser: what it takes for a TYPE line must be
// one, of the same type, and no line it takes may be refused.
func TestReadsCommentsAsTheParser(t *testing.T) {
	for _, tc := range []struct {
		text string
		fast bool
	}{
		{"# TYPE lat_seconds histogram", true},
		{"# TYPE up gauge", true},
		{"# TYPE x_total counter", true},
		{"# HELP up Whether the server answers.", true},
		{"# EOF", true},
		{"#TYPE x histogram", true},
		{"# TYPEx y", true},
		{"# HELP", true},
		{"# a comment", true},
		{"#", true},
		{"# TYPE x histogramx", false},
		{"# TYPE x  histogram", false},
		{"#  TYPE x histogram", false},
		{"# TYPE\tx histogram", false},
		{"# TYPE x", false},
		{"# TYPE ", false},
		{`# TYPE "x.y" histogram`, false},
		{"# TYPE x-y gauge", false},
		{"# HELP x \xff", false},
		{"# HELP x", false},
		// upstream's lexer ends the page, with no error, at a comment's
		// NUL byte
		{"#\x00", false},
		{"# a \x00 comment", false},
		{"# HELP x \x00", false},
	} {
		t.Run(tc.text, func(t *testing.T) {
			c, ok := readComment([]byte(tc.text))
			if ok != tc.fast {
				t.Errorf("read by the fast path: %v, want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			entry, p, err := upstreamLine(tc.text)
			if err != nil {
				t.Fatalf("the fast path reads it, upstream's parser does not: %v", err)
			}
			if c.isType != (entry == textparse.EntryType) {
				t.Fatalf("a TYPE line to the fast path: %v; upstream's parser reads %v", c.isType, entry)
			}
			if c.isType {
				name, typ := p.Type()
				if typ != c.mtype {
					t.Errorf("type %q, upstream's parser reads %q", c.mtype, typ)
				}
				if (typ == model.MetricTypeHistogram) != (c.histogram != nil) || c.histogram != nil && string(c.histogram) != string(name) {
					t.Errorf("histogram family %q, upstream's parser reads %q of type %s", c.histogram, name, typ)
				}
			}
		})
	}
}

// TestSeenPagesSkipTheParser scrapes each engine's fixture pages in turn
// and checks that from the second on the fast path reads the whole page,
// appending what a loop that never saw the engine appends from it.
func TestSeenPagesSkipTheParser(t *testing.T) {
	dir := filepath.Join("..", "..", "collector", "profiles", "testdata")
	for _, engine := range []string{"vllm", "sglang", "tgi", "llamacpp"} {
		files, err := filepath.Glob(filepath.Join(dir, engine, engine+"-a_*.prom"))
		if err != nil || len(files) < 2 {
			t.Fatalf("the %s fixtures: %v, %d pages", engine, err, len(files))
		}
		var pages [][]byte
		for _, f := range files {
			page, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, page)
		}
		for _, native := range []bool{true, false} {
			for _, keep := range []string{"", everyOtherFamily(string(pages[0]))} {
				cfg := Config{Interval: time.Hour, Timeout: time.Second, NativeHistograms: native, Keep: keep}
				t.Run(fmt.Sprintf("%s/native=%v/keep=%v", engine, native, keep != ""), func(t *testing.T) {
					app := &captured{}
					l := newTestLoop(t, app, cfg)
					for i, page := range pages {
						want := freshScrape(t, cfg, page)
						l.iter++
						a := app.AppenderV2(t.Context())
						if i == 0 {
							if _, err := l.appendPage(a, page, "text/plain; version=0.0.4", 1000); err != nil {
								t.Fatal(err)
							}
						} else {
							kept, _ := l.rules.filter.appendKept(nil, page)
							var counts appendCounts
							conv := &l.conv
							if !native {
								conv = nil
							}
							done, err := l.appendSeen(a, kept, 1000, conv, &counts)
							if err != nil || !done {
								t.Fatalf("page %d: the fast path read it: %v, %v", i+1, done, err)
							}
							l.markStale(a, 1000, false)
							l.live = l.iter
						}
						if err := a.Commit(); err != nil {
							t.Fatal(err)
						}
						l.evict()
						if got := notStale(app.take()); !slices.Equal(got, want) {
							t.Errorf("page %d appended\n%s\na fresh loop\n%s", i+1, strings.Join(got, "\n"), strings.Join(want, "\n"))
						}
					}
				})
			}
		}
	}
}

func newTestLoop(t testing.TB, app *captured, cfg Config) *loop {
	s, err := New(app, nil, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(cfg, []Target{{URL: "http://127.0.0.1:1/metrics", Labels: labels.FromStrings("instance", "x")}}); err != nil {
		t.Fatal(err)
	}
	return onlyLoop(t, s)
}

// freshScrape is what a loop that has seen no page appends from page,
// with the error it returns.
func freshScrape(t testing.TB, cfg Config, page []byte) []string {
	got, err := scrapeWith(t, newTestLoop(t, &captured{}, cfg), page)
	if err != nil {
		t.Fatalf("a fresh loop: %v", err)
	}
	return got
}

// scrapeWith is what l appends from page, stale markers left out, sorted.
func scrapeWith(t testing.TB, l *loop, page []byte) ([]string, error) {
	app := &captured{}
	l.iter++
	a := app.AppenderV2(t.Context())
	_, err := l.appendPage(a, page, "text/plain; version=0.0.4", 1000)
	if err != nil {
		return nil, err
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	l.evict()
	return notStale(app.take()), nil
}

func notStale(samples []sample) []string {
	var out []string
	for _, s := range samples {
		if s.value != "stale" {
			out = append(out, s.String())
		}
	}
	slices.Sort(out)
	return out
}

// FuzzAppendPage scrapes two pages one after the other and checks that
// the second appends what a loop that has seen no page appends from it,
// or fails as that one does: what the first page left in the cache, and
// the fast path that reads from it, change nothing.
func FuzzAppendPage(f *testing.F) {
	f.Add([]byte("# TYPE lat_seconds histogram\nlat_seconds_bucket{le=\"1\"} 1\nlat_seconds_bucket{le=\"+Inf\"} 2\nlat_seconds_count 2\nlat_seconds_sum 3\nup 1\n"),
		[]byte("# TYPE lat_seconds histogram\nlat_seconds_bucket{le=\"1\"} 2\nlat_seconds_bucket{le=\"+Inf\"} 3\nlat_seconds_count 3\nlat_seconds_sum 4\nup 0 17\n"))
	f.Add([]byte("x{a=\"b\"} 1\ny 2\n"), []byte("x{a=\"b\"} 1_0\ny 2\n"))
	f.Add([]byte("x 1\n# TYPE x gauge\n"), []byte("# TYPE x histogram\nx 2\nx_count 1\n"))
	f.Add([]byte("x 1\n"), []byte("#\x00\nx 1\n"))
	f.Add([]byte("x_bucket{le=\"1\"} 1\nq{quantile=\"1\"} 0\n"), []byte("# TYPE y histogram\nx_bucket{le=\"1\"} 1\n# TYPE q summary\nq{quantile=\"1\"} 0\n"))
	for _, fixture := range []string{"vllm/vllm-a_8000_t00.prom", "tgi/tgi-a_80_t00.prom"} {
		page, err := os.ReadFile(filepath.Join("..", "..", "collector", "profiles", "testdata", fixture))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(page, page)
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		cfg := Config{Interval: time.Hour, Timeout: time.Second, NativeHistograms: true}
		want, wantErr := scrapeWith(t, newTestLoop(t, &captured{}, cfg), second)
		l := newTestLoop(t, &captured{}, cfg)
		_, _ = scrapeWith(t, l, first)
		got, err := scrapeWith(t, l, second)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("after the first page: %v; a fresh loop: %v", err, wantErr)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after the first page appended\n%s\na fresh loop\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
