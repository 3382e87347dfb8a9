package once

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestMapComputesOnce(t *testing.T) {
	var (
		m     Map[string, int]
		calls atomic.Int64
		wg    sync.WaitGroup
	)
	release := make(chan struct{})
	for range 16 {
		wg.Go(func() {
			v, err := m.Get("a", func() (int, error) {
				calls.Add(1)
				<-release
				return 7, nil
			})
			if err != nil || v != 7 {
				t.Errorf("Get = %d, %v; want 7", v, err)
			}
		})
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("computed %d times, want once", n)
	}
	if v, _ := m.Get("b", func() (int, error) { return 8, nil }); v != 8 || m.Len() != 2 {
		t.Errorf("Get(b) = %d with %d keys, want 8 with 2", v, m.Len())
	}
}

func TestMapForgetsFailures(t *testing.T) {
	var m Map[int, string]
	fail := errors.New("no")
	if _, err := m.Get(1, func() (string, error) { return "x", fail }); !errors.Is(err, fail) {
		t.Fatalf("err = %v, want %v", err, fail)
	}
	v, err := m.Get(1, func() (string, error) { return "y", nil })
	if err != nil || v != "y" {
		t.Errorf("after a failure Get = %q, %v; want y", v, err)
	}
}
