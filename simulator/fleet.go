package simulator

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Fleet is a set of simulated servers sharing a start time and seed.
type Fleet struct {
	servers []*Server
}

// NewFleet builds the servers of cfg, starting at start; cfg.Seed makes runs repeatable.
// A cfg built in code rather than parsed is validated and defaulted here (on a copy).
func NewFleet(cfg *FleetConfig, start time.Time) (*Fleet, error) {
	c := *cfg
	c.Servers = slices.Clone(cfg.Servers)
	v := validator{file: "fleet"}
	v.fleet(&c)
	if len(v.errs) > 0 {
		return nil, fmt.Errorf("building fleet: %w", errors.Join(v.errs...))
	}
	f := &Fleet{}
	for i, sc := range c.Servers {
		s, err := newServer(sc, i, c.Seed, start)
		if err != nil {
			return nil, fmt.Errorf("building fleet: %w", err)
		}
		f.servers = append(f.servers, s)
	}
	return f, nil
}

// Servers returns the servers in fleet-file order.
func (f *Fleet) Servers() []*Server { return f.servers }

// Advance runs every server up to time to, using up to GOMAXPROCS goroutines; servers are
// independent, so the result does not depend on the scheduling.
func (f *Fleet) Advance(to time.Time) {
	workers := min(runtime.GOMAXPROCS(0), len(f.servers))
	if workers <= 1 {
		for _, s := range f.servers {
			s.Advance(to)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(f.servers); i = int(next.Add(1)) - 1 {
				f.servers[i].Advance(to)
			}
		})
	}
	wg.Wait()
}
