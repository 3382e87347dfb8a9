package scraper

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// discard accepts and forgets every sample.
type discard struct{}

func (discard) AppenderV2(context.Context) storage.AppenderV2 { return discard{} }

func (discard) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AOptions) (storage.SeriesRef, error) {
	return 1, nil
}
func (discard) Commit() error   { return nil }
func (discard) Rollback() error { return nil }

// BenchmarkAppendPage reads a vLLM and a TGI fixture page as a scrape
// does, from its bytes to its samples appended, with classic histograms
// converted to native ones and the page's series seen the scrape before:
// read by upstream's parser, keeping every family (parser,keep=all, the
// baseline: a page without a content type is read by the parser, as Go's
// text format is its fallback), then as a scrape reads it, keeping every
// family (keep=all) or every other one (keep=half).
func BenchmarkAppendPage(b *testing.B) {
	for _, fixture := range []string{"vllm/vllm-a_8000_t00.prom", "tgi/tgi-a_80_t00.prom"} {
		page, err := os.ReadFile(filepath.Join("..", "..", "collector", "profiles", "testdata", fixture))
		if err != nil {
			b.Fatal(err)
		}
		for _, run := range []struct{ name, keep, contentType string }{
			{"parser,keep=all", "", ""},
			{"keep=all", "", "text/plain; version=0.0.4"},
			{"keep=half", everyOtherFamily(string(page)), "text/plain; version=0.0.4"},
		} {
			cfg := Config{Interval: 15e9, Timeout: 10e9, NativeHistograms: true, Keep: run.keep}
			s, err := New(discard{}, nil, nil, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Apply(cfg, []Target{{URL: "http://127.0.0.1:1/metrics", Labels: labels.FromStrings("instance", "x", "job", "bench")}}); err != nil {
				b.Fatal(err)
			}
			l := onlyLoop(b, s)
			scrape := func() {
				l.iter++
				if _, err := l.appendPage(discard{}, page, run.contentType, 1000); err != nil {
					b.Fatal(err)
				}
				l.evict()
			}
			scrape() // the series seen before
			b.Run(filepath.Dir(fixture)+"/"+run.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(page)))
				for b.Loop() {
					scrape()
				}
			})
		}
	}
}
