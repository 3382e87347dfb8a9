package collector

import (
	"context"
	"time"
)

// Run collects once per interval until ctx ends, at times aligned to the
// interval, and hands each snapshot to after (which may be nil), so the
// rules that read signals run right after each collection. The interval
// is asked for before each wait, so a reload changes it from the next
// cycle. now is the clock.
func (c *Collector) Run(ctx context.Context, interval func() time.Duration, now func() time.Time, after func(context.Context, *Snapshot)) {
	for {
		c.runOnce(ctx, now(), after)
		iv := interval()
		next := now().Truncate(iv).Add(iv)
		t := time.NewTimer(next.Sub(now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (c *Collector) runOnce(ctx context.Context, at time.Time, after func(context.Context, *Snapshot)) {
	snap, err := c.Cycle(ctx, at)
	if ctx.Err() != nil {
		// Stopping: a cycle cut short is not a failure worth a log line.
		return
	}
	if err != nil {
		c.logger.Warn("Collection failed", "err", err)
		return
	}
	for _, e := range snap.Errors {
		c.logger.Warn("Signal rule failed", "err", e)
	}
	if after != nil {
		after(ctx, snap)
	}
}
