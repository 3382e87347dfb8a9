package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/internal/promapi"
)

// RemoteSource queries anything that serves the Prometheus HTTP query API:
// Prometheus, Thanos, Mimir, Cortex, VictoriaMetrics.
type RemoteSource struct {
	api     *promapi.Client
	cfg     config.RemoteConfig
	metrics *Metrics
	plan    queryPlan
	// sleep waits between retries; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewRemoteSource builds a client from cfg's HTTP settings.
func NewRemoteSource(cfg config.RemoteConfig, m *Metrics) (*RemoteSource, error) {
	hc, err := commonconfig.NewClientFromConfig(cfg.HTTPClientConfig, "perfagent")
	if err != nil {
		return nil, fmt.Errorf("building HTTP client for %s: %w", cfg.URL, err)
	}
	client, err := promapi.NewClient(cfg.URL.Raw(), hc)
	if err != nil {
		return nil, fmt.Errorf("building Prometheus API client for %s: %w", cfg.URL, err)
	}
	return &RemoteSource{api: client, cfg: cfg, metrics: m, plan: queryPlan{sharedQuantiles: true, concurrency: 4, groupBySource: true, nativeHistograms: &nativeOrClassicQueries{}}, sleep: sleepContext}, nil
}

// queryPlan is how a cycle queries a remote source. Quantiles of one
// histogram share one fetch of its bucket rates, which the source would
// otherwise compute once per quantile; the fetch groups by model_name
// where the profile renames it to model first (groupBySource). Histograms
// the source holds as native ones are read so (nativeHistograms). Four
// queries in flight keep a cycle short without letting one agent take
// every query slot of the source (Prometheus runs 20 at once by default).
func (s *RemoteSource) queryPlan() queryPlan { return s.plan }

// Query implements Source.
func (s *RemoteSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	var out promql.Vector
	err := s.do(ctx, expr, func(ctx context.Context) error {
		var err error
		out, err = s.api.Query(ctx, expr, ts, time.Duration(s.cfg.QueryTimeout))
		return err
	})
	return out, err
}

// QueryRange implements Source.
func (s *RemoteSource) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	var out promql.Matrix
	err := s.do(ctx, expr, func(ctx context.Context) error {
		var err error
		out, err = s.api.QueryRange(ctx, expr, start, end, step, time.Duration(s.cfg.QueryTimeout))
		return err
	})
	return out, err
}

// do runs one query with the per-query timeout and retries transient
// failures with doubling backoff. Bad queries are not retried.
func (s *RemoteSource) do(ctx context.Context, expr string, call func(context.Context) error) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.QueryTimeout))
	defer cancel()
	backoff := time.Duration(s.cfg.RetryBackoff)
	var err error
	for attempt := 0; ; attempt++ {
		err = call(ctx)
		if err == nil {
			s.metrics.SourceQueries.WithLabelValues(OutcomeSuccess).Inc()
			s.metrics.SourceQueryLatency.Observe(time.Since(start).Seconds())
			s.metrics.SourceUp.Set(1)
			return nil
		}
		if attempt >= s.cfg.Retries || !retryable(err) || ctx.Err() != nil {
			break
		}
		s.metrics.SourceQueries.WithLabelValues(OutcomeRetry).Inc()
		if serr := s.sleep(ctx, backoff); serr != nil {
			break
		}
		backoff *= 2
	}
	s.metrics.SourceQueries.WithLabelValues(OutcomeError).Inc()
	s.metrics.SourceQueryLatency.Observe(time.Since(start).Seconds())
	if retryable(err) {
		s.metrics.SourceUp.Set(0)
		err = unavailableError{err}
	}
	return fmt.Errorf("querying %s for %q: %w", s.cfg.URL, expr, err)
}

// retryable tells transport failures and server overload, which may pass,
// from bad queries, which will not.
func retryable(err error) bool {
	var apiErr *promapi.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Type {
		case promapi.ErrServer, promapi.ErrTimeout, promapi.ErrBadResponse:
			return true
		default:
			return false
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return !errors.Is(err, context.Canceled)
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
