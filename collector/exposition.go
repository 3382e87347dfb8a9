package collector

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/storage"
)

// AppendExposition appends one page of the Prometheus text format (0.0.4)
// to app as a scrape at ts would: every sample gets the target labels
// (instance, job) on top of its own. Replays of simulated servers and
// tests use it to fill a store without running a scraper. It does not
// commit.
func AppendExposition(app storage.Appender, text []byte, ts time.Time, target labels.Labels) error {
	p := textparse.NewPromParser(text, labels.NewSymbolTable(), false)
	b := labels.NewBuilder(labels.EmptyLabels())
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parsing exposition of %s: %w", target, err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		var l labels.Labels
		p.Labels(&l)
		b.Reset(l)
		target.Range(func(t labels.Label) { b.Set(t.Name, t.Value) })
		if _, err := app.Append(0, b.Labels(), ts.UnixMilli(), v); err != nil {
			return fmt.Errorf("appending %s: %w", b.Labels(), err)
		}
	}
}
