package scraper

import (
	"context"
	"runtime"
	"testing"
	"time"
)

func TestWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWorkers()
	before := runtime.NumGoroutine()

	// A scrape that hangs does not hold up the next one.
	release, hung := make(chan struct{}), make(chan struct{})
	go func() {
		w.do(ctx, func() { <-release })
		close(hung)
	}()
	next := make(chan struct{})
	go w.do(ctx, func() { close(next) })
	select {
	case <-next:
	case <-time.After(10 * time.Second):
		t.Fatal("a scrape waited for a hanging one")
	}
	close(release)
	<-hung

	// Scrapes one after the other run on the workers already started,
	// which would otherwise each wait a minute for more.
	for range 200 {
		w.do(ctx, func() {})
	}
	if n := runtime.NumGoroutine() - before; n > 20 {
		t.Errorf("%d more goroutines after 200 scrapes", n)
	}

	cancel()
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine() - before; n > 0 {
		t.Errorf("%d workers still running after their context ended", n)
	}
}
