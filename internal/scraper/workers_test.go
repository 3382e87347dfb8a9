package scraper

import (
	"context"
	"sync"
	"testing"
	"time"
)

// idleWorkers is how many workers wait for a scrape.
func (w *workers) idleWorkers() int {
	w.mtx.Lock()
	defer w.mtx.Unlock()
	return len(w.idle)
}

// waitIdle waits up to ten seconds for at most want idle workers, and
// returns how many there are.
func (w *workers) waitIdle(want int) int {
	deadline := time.Now().Add(10 * time.Second)
	for w.idleWorkers() > want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return w.idleWorkers()
}

func TestWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const idleFor = 200 * time.Millisecond
	w := newWorkers(idleFor)

	// A scrape that hangs does not hold up the next one.
	unhang, hung := make(chan struct{}), make(chan struct{})
	go func() {
		w.do(ctx, func() { <-unhang })
		close(hung)
	}()
	next := make(chan struct{})
	go w.do(ctx, func() { close(next) })
	select {
	case <-next:
	case <-time.After(10 * time.Second):
		t.Fatal("a scrape waited for a hanging one")
	}
	close(unhang)
	<-hung

	// A burst of slow scrapes runs at once, on a worker each.
	const burst = 50
	var wg sync.WaitGroup
	started, release := make(chan struct{}), make(chan struct{})
	for range burst {
		wg.Go(func() {
			w.do(ctx, func() {
				started <- struct{}{}
				<-release
			})
		})
	}
	for i := range burst {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of a burst of %d slow scrapes ran at once", i, burst)
		}
	}
	close(release)
	wg.Wait()
	if n := w.idleWorkers(); n < burst {
		t.Fatalf("%d idle workers after a burst of %d, want at least as many", n, burst)
	}

	// Scrapes one after the other, many times in a worker's idle time,
	// go to the worker idle last: the others end once idle for idleFor,
	// while the scrapes go on.
	for end := time.Now().Add(4 * idleFor); time.Now().Before(end); {
		w.do(ctx, func() {})
		time.Sleep(idleFor / 200)
	}
	if n := w.idleWorkers(); n > 1 {
		t.Errorf("%d idle workers %s after the burst, while scrapes go on; want the ones the burst started gone", n, 4*idleFor)
	}

	// Idle workers end after idleFor.
	if n := w.waitIdle(0); n > 0 {
		t.Errorf("%d workers left once idle", n)
	}

	// And when their context ends.
	w = newWorkers(time.Hour)
	for range 3 {
		wg.Go(func() { w.do(ctx, func() { time.Sleep(10 * time.Millisecond) }) })
	}
	wg.Wait()
	if w.idleWorkers() == 0 {
		t.Fatal("no worker stayed idle")
	}
	cancel()
	if n := w.waitIdle(0); n > 0 {
		t.Errorf("%d workers still waiting after their context ended", n)
	}
}
