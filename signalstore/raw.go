package signalstore

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// rawChunkRange is how much time one chunk of a raw series spans at most
// (40 samples at a 15 s scrape interval). A sample older than half of it
// behind the newest raw sample is refused, so it must exceed twice the
// longest scrape; a shorter range keeps less of a series beyond the
// window in memory.
const rawChunkRange = 10 * time.Minute

// rawHead keeps the samples of the embedded scrape in memory for as long
// as the profiles read them: a TSDB head that is never compacted into
// blocks and has no write-ahead log; trim drops what is older than the
// window. Its memory-mapped chunk files live under a directory of their
// own, emptied at start: raw samples do not survive a restart.
type rawHead struct {
	head *tsdb.Head
	dir  string
}

func openRawHead(dir string, logger *slog.Logger, reg prometheus.Registerer) (*rawHead, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clearing the raw samples of a previous run at %s: %w", dir, err)
	}
	opts := tsdb.DefaultHeadOptions()
	opts.ChunkDirRoot = dir
	opts.ChunkRange = rawChunkRange.Milliseconds()
	opts.StripeSize = stripeSize
	opts.ChunkWriteBufferSize = chunkWriteBufferSize
	head, err := tsdb.NewHead(nil, logger, nil, nil, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("creating the raw sample head at %s: %w", dir, err)
	}
	if err := head.Init(math.MinInt64); err != nil {
		_ = head.Close()
		return nil, fmt.Errorf("initializing the raw sample head at %s: %w", dir, err)
	}
	// The head's own metrics would share the TSDB's names; these two say
	// what the raw samples hold.
	if reg != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "perfagent_raw_series",
				Help: "Series of scraped samples held in memory, beside the TSDB's prometheus_tsdb_head_series.",
			}, func() float64 { return float64(head.NumSeries()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "perfagent_raw_min_time_seconds",
				Help: "Time from which scraped samples are kept, as a Unix timestamp: the last trim, or the first sample before one; 0 while there is none.",
			}, func() float64 { return rawMinTime(head.MinTime()) }),
		)
	}
	return &rawHead{head: head, dir: dir}, nil
}

// rawMinTime is a head's minimum time in seconds, 0 while it has none.
func rawMinTime(ms int64) float64 {
	if ms == math.MinInt64 || ms == math.MaxInt64 {
		return 0
	}
	return float64(ms) / 1000
}

// querier reads [mint, maxt] of the head.
func (r *rawHead) querier(mint, maxt int64) (storage.Querier, error) {
	return readHead(r.head, mint, maxt, tsdb.NewBlockQuerier, storage.NoopQuerier())
}

// chunkQuerier reads the chunks of [mint, maxt] of the head.
func (r *rawHead) chunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return readHead(r.head, mint, maxt, tsdb.NewBlockChunkQuerier, storage.NoopChunkedQuerier())
}

// readHead opens a reader of [mint, maxt] of head with open, as the TSDB
// opens one of its own head. Isolation stays on: it is how a truncation
// knows which reads to wait for before it drops chunks.
func readHead[Q interface{ Close() error }](head *tsdb.Head, mint, maxt int64, open func(tsdb.BlockReader, int64, int64) (Q, error), none Q) (Q, error) {
	q, err := open(tsdb.NewRangeHead(head, mint, maxt), mint, maxt)
	if err != nil {
		return none, fmt.Errorf("reading the raw samples: %w", err)
	}
	// A truncation that began while the reader was opened does not wait
	// for it: read only what the truncation keeps.
	shouldClose, getNew, newMint := head.IsQuerierCollidingWithTruncation(mint, maxt)
	if !shouldClose {
		return q, nil
	}
	if err := q.Close(); err != nil {
		return none, fmt.Errorf("closing a reader of truncated raw samples: %w", err)
	}
	if !getNew {
		return none, nil
	}
	return readHead(head, newMint, maxt, open, none)
}

// has reports whether the head holds a series of metric.
func (r *rawHead) has(ctx context.Context, metric string) bool {
	return headHas(ctx, r.head, metric)
}

// headHas reports whether head holds a series of metric.
func headHas(ctx context.Context, head *tsdb.Head, metric string) bool {
	ir, err := head.Index()
	if err != nil {
		return false
	}
	defer ir.Close()
	p, err := ir.Postings(ctx, model.MetricNameLabel, metric)
	return err == nil && p.Next()
}

// trim drops the samples older than before.
func (r *rawHead) trim(before time.Time) error {
	if err := r.head.Truncate(before.UnixMilli()); err != nil {
		return fmt.Errorf("dropping raw samples before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return nil
}

func (r *rawHead) close() error {
	err := r.head.Close()
	if rerr := os.RemoveAll(r.dir); err == nil && rerr != nil {
		err = fmt.Errorf("removing the raw samples at %s: %w", r.dir, rerr)
	}
	return err
}
