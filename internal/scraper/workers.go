package scraper

import (
	"context"
	"slices"
	"sync"
	"time"
)

// workers run the loops' scrapes on a few goroutines that stay while
// there are scrapes to run. A scrape grows its goroutine's stack (the
// HTTP client's calls, the parser's), and the garbage collector shrinks
// the stack of a goroutine that waits: run on a thousand loops' own
// goroutines, each waiting an interval between its scrapes, nearly every
// scrape grew a stack again.
//
// A scrape goes to the worker that became idle last, and a scrape that
// finds none idle starts one, so a slow target never holds up another's
// scrape. The workers a burst of slow scrapes started are then the least
// recently used, and end after workerIdle; handed scrapes round all the
// idle workers instead, none of them would ever idle that long.
type workers struct {
	idleFor time.Duration

	mtx  sync.Mutex
	idle []*worker // the last one became idle last
}

// worker is one goroutine running scrapes. Its channel holds at most the
// one scrape it is handed while idle, so that handing it never blocks.
type worker struct{ jobs chan func() }

// workerIdle is how long a worker waits for a scrape before it ends: far
// longer than the 15 ms between scrapes of 1000 targets every 15 s, and
// short enough that the workers a burst started end soon after it.
const workerIdle = 5 * time.Second

func newWorkers(idleFor time.Duration) *workers { return &workers{idleFor: idleFor} }

// do runs f on a worker and returns when it has. A worker started here
// ends after it has been idle for w.idleFor, or when ctx is done.
func (w *workers) do(ctx context.Context, f func()) {
	done := make(chan struct{})
	job := func() {
		defer close(done)
		f()
	}
	w.mtx.Lock()
	if n := len(w.idle); n > 0 {
		wk := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mtx.Unlock()
		wk.jobs <- job
	} else {
		w.mtx.Unlock()
		go w.work(ctx, &worker{jobs: make(chan func(), 1)}, job)
	}
	<-done
}

func (w *workers) work(ctx context.Context, wk *worker, job func()) {
	timer := time.NewTimer(w.idleFor)
	defer timer.Stop()
	for {
		job()
		timer.Reset(w.idleFor)
		w.mtx.Lock()
		w.idle = append(w.idle, wk)
		w.mtx.Unlock()
		select {
		case job = <-wk.jobs:
			continue
		case <-timer.C:
		case <-ctx.Done():
		}
		// Leaving: unless a scrape has taken the worker off the idle list
		// meanwhile, and so is handing it that scrape.
		w.mtx.Lock()
		i := slices.Index(w.idle, wk)
		if i >= 0 {
			w.idle = slices.Delete(w.idle, i, i+1)
		}
		w.mtx.Unlock()
		if i >= 0 {
			return
		}
		job = <-wk.jobs
	}
}
