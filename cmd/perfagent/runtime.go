package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// setRuntime sets the garbage collector's target and, inside a container
// with a memory limit, the soft memory limit, as Prometheus does: the
// environment's GOGC and GOMEMLIMIT win over the flags. Most of the
// agent's allocations live for one cycle (rule evaluation, alert
// templates, query results), so the heap between collections is mostly
// garbage; a GOGC of 50 instead of Go's 100 measured 0.8x the resident
// memory at 1000 servers (docs/configuration.md).
func setRuntime(f daemonFlags, logger *slog.Logger) error {
	if f.autoMemLimit && (f.memLimitRatio <= 0 || f.memLimitRatio > 1) {
		return fmt.Errorf("--auto-gomemlimit.ratio %g is not in (0, 1]", f.memLimitRatio)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(f.gogc)
	}
	if !f.autoMemLimit {
		return nil
	}
	// Outside a cgroup with a limit there is none to follow: the limit
	// stays unset rather than a share of the machine's memory.
	limit, err := memlimit.Set(memlimit.WithRatio(f.memLimitRatio), memlimit.WithProvider(memlimit.FromCgroup))
	switch {
	case err != nil:
		logger.Debug("No container memory limit to follow", "err", err)
	case limit < math.MaxInt64:
		logger.Info("Go memory limit set", "GOMEMLIMIT", limit)
	}
	return nil
}
