package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	oklogrun "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/alerting"
	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/cost"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
	"github.com/optiinfra/perfagent/web"
	"github.com/optiinfra/perfagent/web/api/prom"
	apiv1 "github.com/optiinfra/perfagent/web/api/v1"
)

// newLogger builds the root logger from the --log.* flags, writing to w.
func newLogger(w io.Writer, c promslog.Config) *slog.Logger {
	c.Writer = w
	return promslog.New(&c)
}

func loadProfiles(configFile string, cfg *config.Config) ([]*collector.Profile, []error) {
	return collector.LoadProfiles(profiles.FS, filepath.Dir(configFile), cfg.Collector.ProfileFiles)
}

func joinErrors(errs []error) string {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// daemon holds the running components and what reloads change.
type daemon struct {
	flags     daemonFlags
	shard     shard.Shard
	logger    *slog.Logger
	metrics   *collector.Metrics
	store     *signalstore.Store
	coll      *collector.Collector
	scraper   *collector.EmbeddedSource
	rules     *rules.Manager
	alerts    *alerting.Notifier
	rec       *recommender.Recommender
	pipeline  *agent.Pipeline
	workflows *workflows

	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge

	mtx sync.RWMutex
	cfg *config.Config
}

// serve runs the agent until a termination signal arrives or ctx ends.
func serve(ctx context.Context, f daemonFlags, stderr io.Writer) int {
	logger := newLogger(stderr, f.log)
	logger.Info("Starting perfagent", "version", version.Info(), "build_context", version.BuildContext())
	if err := setRuntime(f, logger); err != nil {
		logger.Error("Invalid runtime flags", "err", err)
		return exitUsage
	}

	sh, err := shard.New(f.shardIndex, f.shardCount)
	if err != nil {
		logger.Error("Invalid --shard.index or --shard.count", "err", err)
		return exitUsage
	}
	if sh.Sharded() {
		logger.Info("Reading, evaluating and changing one shard of the fleet", "shard", sh.Index(), "shards", sh.Count())
	}
	retention, err := model.ParseDuration(f.storageRetention)
	if err != nil {
		logger.Error("Invalid --storage.retention", "value", f.storageRetention, "err", err)
		return exitUsage
	}
	// Validate everything before starting anything.
	cfg, err := config.LoadFile(f.configFile)
	if err != nil {
		logger.Error("Error loading config", "file", absPath(f.configFile), "err", err)
		return exitUsage
	}
	logWarnings(logger, cfg)
	_, errs := loadProfiles(f.configFile, cfg)
	if len(errs) > 0 {
		logger.Error("Error loading engine profiles", "err", joinErrors(errs))
		return exitUsage
	}
	ruleFiles, err := ruleFiles(cfg, f.configFile)
	if err == nil {
		if _, errs := rules.NewLoader(rules.LoaderOptions{Disabled: cfg.Rules.Disabled}).Load(ruleFiles); len(errs) > 0 {
			err = errors.New(joinErrors(errs))
		}
	}
	if err != nil {
		logger.Error("Error loading bottleneck rules", "err", err)
		return exitUsage
	}
	if f.readTimeout < 0 || f.writeTimeout < 0 || f.maxConnections < 0 {
		logger.Error("Negative --web.read-timeout, --web.write-timeout or --web.max-connections", "read_timeout", f.readTimeout, "write_timeout", f.writeTimeout, "max_connections", f.maxConnections)
		return exitUsage
	}
	if err := toolkitweb.Validate(f.webConfigFile); err != nil {
		logger.Error("Error loading web config", "file", absPath(f.webConfigFile), "err", err)
		return exitUsage
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		versioncollector.NewCollector("perfagent"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	a := &daemon{flags: f, shard: sh, logger: logger, metrics: collector.NewMetrics(reg), cfg: cfg}
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name:        "perfagent_shard_info",
		Help:        "The agent's share of the fleet: shard index of count (--shard.index, --shard.count), always 1.",
		ConstLabels: prometheus.Labels{"index": strconv.Itoa(sh.Index()), "count": strconv.Itoa(sh.Count())},
	}).Set(1)
	a.reloadSuccess = promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "perfagent_config_last_reload_successful",
		Help: "Whether the last configuration reload attempt was successful.",
	})
	a.reloadTimestamp = promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "perfagent_config_last_reload_success_timestamp_seconds",
		Help: "Timestamp of the last successful configuration reload.",
	})

	a.store, err = signalstore.Open(signalstore.Options{Path: f.storagePath, Retention: time.Duration(retention), Logger: logger.With("component", "tsdb"), Registerer: reg,
		OutOfOrderWindow: backfillWindow(cfg) + backfillGrace, EvaluationInterval: time.Duration(cfg.Global.EvaluationInterval),
		Raw: cfg.Source.Prometheus == nil})
	if err != nil {
		logger.Error("Error opening storage", "err", err)
		return exitFailure
	}
	var prober *collector.Prober
	if cfg.Collector.Probe.Enabled {
		prober = collector.NewProber(time.Duration(cfg.Collector.Probe.Interval), time.Duration(cfg.Collector.Probe.Timeout), a.metrics)
	}
	a.coll = collector.New(collector.Options{Logger: logger.With("component", "collector"), Metrics: a.metrics, Store: a.store, Prober: prober})
	a.alerts = alerting.New(alerting.Options{Logger: logger.With("component", "notifier"), QueueCapacity: f.queueCapacity})
	gatherer := prometheus.Gatherers{reg, a.alerts.Gatherer()}
	// The metrics that change once a cycle, a series or more per
	// instance: /metrics serves them gathered once per cycle. The signals
	// and forecasts, in the local TSDB already, are served but not written
	// there again as the agent's own metrics; the settings are written
	// from their series, not gathered. The signals' and settings'
	// exporters build their families without a registry.
	perCycle, perCycleInStore := prometheus.NewRegistry(), prometheus.NewRegistry()
	settings := collector.NewSettingsExporter(a.coll)
	a.rules = rules.NewManager(rules.ManagerOptions{
		NotifyFunc:         a.sendBottleneckAlerts,
		Queryable:          a.store,
		Appendable:         a.store.DB(),
		QueryFunc:          a.store.QueryFunc(),
		Engine:             a.store.Engine(),
		Registerer:         reg,
		Logger:             logger.With("component", "rules"),
		Metrics:            rules.NewMetrics(reg),
		EvaluationInterval: time.Duration(cfg.Global.EvaluationInterval),
		ResendDelay:        f.resendDelay,
		Disabled:           cfg.Rules.Disabled,
	})
	if cfg.Source.Prometheus == nil {
		a.scraper, err = collector.NewEmbeddedSource(a.store, logger.With("component", "scrape"), a.metrics, reg, sh)
		if err != nil {
			logger.Error("Error creating scraper", "err", err)
			_ = a.store.Close()
			return exitFailure
		}
	}
	a.rec, err = recommender.New(recommender.Options{Config: &cfg.Recommender})
	if err == nil {
		a.pipeline, err = agent.New(agent.Options{Collector: a.coll, Store: a.store, Rules: a.rules, Recommender: a.rec,
			Own: prometheus.Gatherers{gatherer, perCycle}, Settings: settings,
			Logger: logger.With("component", "pipeline")}, pipelineConfig(cfg))
	}
	if err != nil {
		logger.Error("Error creating the pipeline", "err", err)
		_ = a.store.Close()
		return exitFailure
	}
	if err := a.apply(cfg); err != nil {
		logger.Error("Error applying config", "err", err)
		_ = a.store.Close()
		return exitFailure
	}
	a.reloadSuccess.Set(1)
	a.reloadTimestamp.SetToCurrentTime()
	perCycle.MustRegister(
		rules.NewBottlenecksCollector(a.pipeline.Bottlenecks),
		recommender.NewRecommendationsCollector(a.pipeline.LatestRecommendations),
		cost.NewCollector(a.pipeline.Costs),
	)
	perCycleInStore.MustRegister(rules.NewSaturationETACollector(a.store, a.lastCollection))
	// The SLO targets change with a reload, not with a cycle.
	reg.MustRegister(rules.NewSLOTargetsCollector(func() []config.SLOTarget { return a.config().Rules.SLO }))

	var workflows apiv1.Workflows
	if cfg.Workflow.Enabled() {
		wf, closeStore, err := newWorkflows(cfg, f, sh, a.store, a.alerts, reg, logger)
		if err != nil {
			logger.Error("Error starting workflows", "err", err)
			_ = a.store.Close()
			return exitFailure
		}
		defer closeStore()
		workflows = wf.controller
		a.workflows = wf
	}
	var authenticated func(*http.Request) (string, bool)
	if f.webConfigFile != "" {
		// Decided per request: the file may gain or lose its users while
		// the agent runs.
		authenticated = newWebAuth(f.webConfigFile).authenticated
	}
	var targets func() []collector.TargetHealth
	if a.scraper != nil {
		targets = a.scraper.Targets
	}
	api := apiv1.New(apiv1.Options{
		Collector:       a.coll,
		History:         a.store,
		Rules:           a.rules,
		Recommendations: a.pipeline,
		Workflows:       workflows,
		Authenticated:   authenticated,
		Health:          a.health,
		Config:          a.configYAML,
		Now:             time.Now,
		Version:         version.Version,
		SLO:             a.sloTargets,
		Forecasts: func(ctx context.Context, at time.Time) ([]rules.SaturationETA, error) {
			return rules.SaturationETAs(ctx, a.store, at)
		},
		Targets:    targets,
		Generation: a.pipeline.Generation,
		Shard:      sh,
		Costs:      a.pipeline.Costs,
	})
	query := &prom.Options{Queryable: a.store, Engine: a.store.Engine(), LookbackDelta: signalstore.LookbackDelta, Logger: logger.With("component", "query"),
		Target:  labels.FromStrings(model.JobLabel, collector.ScrapeJobName, model.InstanceLabel, ownInstance(f.listenAddress)),
		Version: version.Version, Revision: version.Revision, Branch: version.Branch, BuildUser: version.BuildUser, BuildDate: version.BuildDate}
	webOpts := web.Options{Logger: logger.With("component", "web"), Gatherer: gatherer, PerCycle: []prometheus.Gatherer{perCycle, perCycleInStore, collector.NewSignalsExporter(a.coll), settings}, Generation: a.pipeline.Generation, Registerer: reg, API: api, Query: query, Ready: a.coll.Ready, Version: version.Version,
		EnableLifecycle: f.enableLifecycle, ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout, MaxConnections: f.maxConnections}
	handler := web.New(webOpts)

	listener, err := net.Listen("tcp", f.listenAddress)
	if err != nil {
		logger.Error("Error listening", "address", f.listenAddress, "err", err)
		_ = a.store.Close()
		return exitFailure
	}

	var g oklogrun.Group
	{
		term := make(chan os.Signal, 1)
		signal.Notify(term, os.Interrupt, syscall.SIGTERM)
		cancel := make(chan struct{})
		g.Add(func() error {
			defer signal.Stop(term)
			select {
			case s := <-term:
				logger.Info("Received signal, exiting gracefully...", "signal", s.String())
			case <-handler.Quit():
				logger.Info("Received termination request via web service, exiting gracefully...")
			case <-ctx.Done():
				logger.Info("Stopping")
			case <-cancel:
			}
			return nil
		}, func(error) {
			handler.SetStopping()
			close(cancel)
		})
	}
	{
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		cancel := make(chan struct{})
		g.Add(func() error {
			defer signal.Stop(hup)
			for {
				select {
				case <-hup:
					if err := a.reload(); err != nil {
						logger.Error("Error reloading config", "err", err)
					}
				case rc := <-handler.Reload():
					err := a.reload()
					if err != nil {
						logger.Error("Error reloading config", "err", err)
					}
					rc <- err
				case <-cancel:
					return nil
				}
			}
		}, func(error) { close(cancel) })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			return handler.Serve(ctx, listener, f.webConfigFile)
		}, func(error) { cancel() })
	}
	if a.scraper != nil {
		g.Add(a.scraper.Run, func(error) { a.scraper.Stop() })
	}
	if a.workflows != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			a.workflows.controller.Run(ctx)
			return nil
		}, func(error) { cancel() })
	}
	// Stopping, the notifier drains its queues.
	g.Add(func() error {
		a.alerts.Run()
		return nil
	}, func(error) { a.alerts.Stop() })
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			a.pipeline.Run(ctx, time.Now, backfillWindow(a.config()))
			return nil
		}, func(error) { cancel() })
	}
	err = g.Run()
	if cerr := a.store.Close(); cerr != nil {
		logger.Error("Error closing storage", "err", cerr)
	}
	if err != nil {
		logger.Error("Fatal error", "err", err)
		return exitFailure
	}
	logger.Info("See you next time!")
	return exitSuccess
}

// ownInstance is the instance label of the agent's own metrics in its
// store: the listen address, with the host name when it listens on every
// interface, as a Prometheus scraping it would name it.
func ownInstance(listenAddress string) string {
	host, port, err := net.SplitHostPort(listenAddress)
	if err != nil {
		return listenAddress
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// externalURL is the agent's URL as people reach it, for links.
func (a *daemon) externalURL() string {
	return externalURL(a.config().Workflow.ExternalURL, a.flags.listenAddress)
}

// sendBottleneckAlerts hands the rule manager's alerts to the notifier,
// each linking to its instance's page.
func (a *daemon) sendBottleneckAlerts(_ context.Context, alerts ...*notifier.Alert) {
	base := a.externalURL()
	for _, al := range alerts {
		al.GeneratorURL = base + web.InstancePath(al.Labels.Get(signals.LabelInstance))
	}
	a.alerts.Send(alerts...)
}

func (a *daemon) config() *config.Config {
	a.mtx.RLock()
	defer a.mtx.RUnlock()
	return a.cfg
}

// pipelineConfig is the part of cfg the pipeline reads on every cycle.
func pipelineConfig(cfg *config.Config) agent.Config {
	return agent.Config{SLO: cfg.Rules.SLO, Interval: time.Duration(cfg.Global.EvaluationInterval), Settle: time.Duration(cfg.Collector.RateWindow),
		Pricing: cost.NewPricing(cfg), Prefer: cfg.Recommender.Objectives.Prefer}
}

// backfillGrace is how long after the first cycle the backfill may append
// its history: it runs beside the cycles, which move the store's newest
// sample on, and appends once its queries are answered. Against a
// Prometheus scraping 1000 servers those took longer than two cycles, and
// a window of two intervals refused the whole history as too old.
const backfillGrace = 10 * time.Minute

// backfillWindow is how much signal history to compute from the source
// at start: remote mode's backfill; none in embedded mode.
func backfillWindow(cfg *config.Config) time.Duration {
	if cfg.Source.Prometheus == nil {
		return 0
	}
	return time.Duration(cfg.Source.Prometheus.Backfill)
}

// lastCollection is the time of the last collection, after which the
// rules were evaluated; false before the first.
func (a *daemon) lastCollection() (time.Time, bool) {
	snap := a.coll.Latest()
	if snap == nil {
		return time.Time{}, false
	}
	return snap.Time, true
}

func (a *daemon) health() apiv1.Health {
	cfg := a.config()
	h := apiv1.Health{Mode: cfg.Mode(), Ready: a.coll.Ready(), Version: version.Version,
		EvaluationIntervalSeconds: time.Duration(cfg.Global.EvaluationInterval).Seconds(),
		Shard:                     apiv1.Shard{Index: a.shard.Index(), Count: a.shard.Count()}}
	h.SourceUp = h.Ready
	if snap := a.coll.Latest(); snap != nil {
		h.LastCollection = snap.Time
		h.Instances = len(snap.Instances)
	}
	h.Alertmanagers = []string{}
	for _, u := range a.alerts.Alertmanagers() {
		h.Alertmanagers = append(h.Alertmanagers, u.String())
	}
	h.Status = "ok"
	if !h.Ready {
		h.Status = "degraded"
	}
	return h
}

// sloTargets are the SLO targets in force for a model.
func (a *daemon) sloTargets(model string) apiv1.SLOTargets {
	ttft, itl, errRatio, err := rules.SLOTargetsFor(a.config().Rules.SLO, model)
	if err != nil {
		// Loading the configuration checked the targets.
		a.logger.Error("SLO targets", "err", err)
	}
	return apiv1.SLOTargets{TTFTP95Seconds: ttft.Seconds(), ITLP95Seconds: itl.Seconds(), ErrorRatio: errRatio}
}

func (a *daemon) configYAML() (string, error) {
	b, err := yaml.Marshal(a.config())
	if err != nil {
		return "", fmt.Errorf("rendering configuration: %w", err)
	}
	return string(b), nil
}
