package scraper

import (
	"context"
	"time"
)

// workers run the scrapes of every loop on a few goroutines that stay
// while there are scrapes to run. A scrape grows its goroutine's stack
// (the HTTP client's calls, the parser's), and the garbage collector
// shrinks the stack of a goroutine that waits: run on a thousand loops'
// own goroutines, each waiting an interval between its scrapes, nearly
// every scrape grew its stack again. A scrape that finds no worker
// waiting starts one, so that a slow target never holds up another's
// scrape.
type workers struct {
	jobs chan func()
}

// workerIdle is how long a worker waits for a scrape before it ends:
// longer than the usual scrape intervals, so that even a small fleet's
// scrapes find one.
const workerIdle = time.Minute

func newWorkers() *workers { return &workers{jobs: make(chan func())} }

// do runs f on a worker and returns when it has. A worker started here
// ends when ctx is done, or once idle.
func (w *workers) do(ctx context.Context, f func()) {
	done := make(chan struct{})
	job := func() {
		defer close(done)
		f()
	}
	select {
	case w.jobs <- job:
	default:
		go w.work(ctx, job)
	}
	<-done
}

func (w *workers) work(ctx context.Context, job func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(workerIdle)
		select {
		case job = <-w.jobs:
		case <-idle.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
