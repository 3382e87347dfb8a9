package alerting

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/notifier"

	"github.com/optiinfra/perfagent/config"
)

// DefaultQueueCapacity is how many alerts wait per Alertmanager before the
// oldest are dropped, as Prometheus's --alertmanager.notification-queue-capacity.
const DefaultQueueCapacity = 10000

// Options configure a Notifier.
type Options struct {
	// QueueCapacity bounds each Alertmanager's queue (default
	// DefaultQueueCapacity).
	QueueCapacity int
	Logger        *slog.Logger
}

// Notifier sends alerts to the configured Alertmanagers. Build it with New,
// apply a configuration, run Run in its own goroutine, and Stop it after
// the components that send alerts have stopped.
type Notifier struct {
	logger  *slog.Logger
	manager *notifier.Manager
	targets chan map[string][]*targetgroup.Group
	// The upstream notifier registers its metrics under the prometheus_
	// namespace; they are kept apart and renamed by Gatherer.
	registry *prometheus.Registry
}

// New builds a Notifier that knows no Alertmanager yet.
func New(o Options) *Notifier {
	if o.QueueCapacity <= 0 {
		o.QueueCapacity = DefaultQueueCapacity
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	return &Notifier{
		logger: o.Logger,
		manager: notifier.NewManager(&notifier.Options{
			QueueCapacity:   o.QueueCapacity,
			DrainOnShutdown: true,
			Registerer:      reg,
		}, model.UTF8Validation, o.Logger),
		// Buffered for one update, so ApplyConfig does not wait for Run.
		targets:  make(chan map[string][]*targetgroup.Group, 1),
		registry: reg,
	}
}

// PrepareConfig builds the HTTP client of every Alertmanager of c, so that
// a configuration the notifier cannot take is refused before anything
// changes; the returned commit applies it.
func (n *Notifier) PrepareConfig(c *config.Config) (commit func(), err error) {
	for i, am := range c.Alerting.AlertmanagerConfigs {
		if _, err := commonconfig.NewClientFromConfig(am.HTTPClientConfig, "alertmanager"); err != nil {
			return nil, fmt.Errorf("alerting.alertmanagers[%d]: %w", i, err)
		}
	}
	return func() {
		if err := n.ApplyConfig(c); err != nil {
			n.logger.Error("Applying the alerting configuration failed", "err", err)
		}
	}, nil
}

// ApplyConfig sets the Alertmanagers, their HTTP clients and the alert
// relabelling. An Alertmanager whose configuration stays keeps its queue.
func (n *Notifier) ApplyConfig(c *config.Config) error {
	if err := n.manager.ApplyConfig(&promconfig.Config{
		GlobalConfig:   promconfig.GlobalConfig{MetricNameValidationScheme: model.UTF8Validation},
		AlertingConfig: c.Alerting,
	}); err != nil {
		return err
	}
	targets := c.AlertmanagerTargets()
	// Only the latest targets matter: replace an update Run has not read.
	select {
	case <-n.targets:
	default:
	}
	n.targets <- targets
	return nil
}

// Run delivers alerts until Stop, then drains the queues.
func (n *Notifier) Run() { n.manager.Run(n.targets) }

// Stop makes Run drain the queues and return.
func (n *Notifier) Stop() { n.manager.Stop() }

// Send queues alerts for every Alertmanager. It does not block.
func (n *Notifier) Send(alerts ...*notifier.Alert) { n.manager.Send(alerts...) }

// Alertmanagers are the Alertmanager URLs alerts are sent to.
func (n *Notifier) Alertmanagers() []*url.URL { return n.manager.Alertmanagers() }

// Gatherer exposes the notifier's metrics as perfagent_notifications_*.
func (n *Notifier) Gatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := n.registry.Gather()
		for _, mf := range mfs {
			name := "perfagent_" + strings.TrimPrefix(mf.GetName(), "prometheus_")
			mf.Name = &name
		}
		return mfs, err
	})
}
