package main

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/rules"
)

// A reloader is one part of the agent that takes a configuration, as in
// Prometheus's main. prepare checks and builds everything the part needs
// and may fail; the commit it returns only swaps what prepare built in.
// Commits run once every reloader has prepared, so a configuration
// changes every part or none.
type reloader struct {
	name    string
	prepare func(cfg *config.Config) (commit func(), err error)
}

// reloaders are the parts of the daemon that a configuration reaches, in
// the order their commits run.
func (a *daemon) reloaders() []reloader {
	rs := []reloader{
		{"restart", a.needsRestart},
		{"collector", a.prepareCollector},
		{"rules", a.prepareRules},
		{"alerting", func(cfg *config.Config) (func(), error) { return a.alerts.PrepareConfig(cfg) }},
		{"recommender", func(cfg *config.Config) (func(), error) { return a.rec.PrepareConfig(cfg.Recommender) }},
		{"pipeline", func(cfg *config.Config) (func(), error) { return a.pipeline.PrepareConfig(pipelineConfig(cfg)) }},
	}
	if a.workflows != nil {
		rs = append(rs, reloader{"workflow", a.prepareWorkflows})
	}
	return append(rs, reloader{"daemon", func(cfg *config.Config) (func(), error) {
		return func() {
			a.mtx.Lock()
			a.cfg = cfg
			a.mtx.Unlock()
			// Last, so that no answer built before every part has
			// committed is kept under the new generation.
			a.pipeline.Reloaded()
		}, nil
	}})
}

// apply puts cfg in force through every reloader; on error nothing
// changes and the error names the part that refused.
func (a *daemon) apply(cfg *config.Config) error {
	rs := a.reloaders()
	commits := make([]func(), 0, len(rs))
	for _, r := range rs {
		commit, err := r.prepare(cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		commits = append(commits, commit)
	}
	for _, commit := range commits {
		commit()
	}
	return nil
}

// reload reads the configuration file again and applies it; on any error
// nothing changes.
func (a *daemon) reload() (err error) {
	start := time.Now()
	defer func() {
		if err != nil {
			a.reloadSuccess.Set(0)
			return
		}
		a.reloadSuccess.Set(1)
		a.reloadTimestamp.SetToCurrentTime()
		a.logger.Info("Completed loading of configuration file", "filename", a.flags.configFile, "totalDuration", time.Since(start))
	}()
	cfg, err := config.LoadFile(a.flags.configFile)
	if err != nil {
		return err
	}
	logWarnings(a.logger, cfg)
	if err := a.apply(cfg); err != nil {
		return fmt.Errorf("%s: %w; nothing was changed", a.flags.configFile, err)
	}
	return nil
}

// logWarnings logs what the configuration should change, such as
// deprecated fields.
func logWarnings(logger *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		logger.Warn("Configuration warning", "msg", w)
	}
}

// needsRestart refuses the few changes a running agent cannot take: the
// source's mode, turning workflows on or off, and the settings probes.
func (a *daemon) needsRestart(cfg *config.Config) (func(), error) {
	old := a.config()
	if old == nil {
		return func() {}, nil
	}
	var errs []error
	if (cfg.Source.Prometheus == nil) != (old.Source.Prometheus == nil) {
		errs = append(errs, errors.New("switching between source.prometheus and source.targets needs a restart"))
	}
	if cfg.Workflow.Enabled() != old.Workflow.Enabled() {
		errs = append(errs, errors.New("turning workflows on or off (workflow.webhook or workflow.exec) needs a restart"))
	}
	if !reflect.DeepEqual(cfg.Collector.Probe, old.Collector.Probe) {
		errs = append(errs, errors.New("changing collector.probe needs a restart"))
	}
	return func() {}, errors.Join(errs...)
}

// prepareCollector loads the engine profiles and builds the source: a new
// client for a remote Prometheus, or the scrape clocks and targets.
func (a *daemon) prepareCollector(cfg *config.Config) (func(), error) {
	profs, errs := loadProfiles(a.flags.configFile, cfg)
	if len(errs) > 0 {
		return nil, errors.New(joinErrors(errs))
	}
	var src collector.Source
	commitSource := func() {}
	if p := cfg.Source.Prometheus; p != nil {
		remote, err := collector.NewRemoteSource(*p, a.metrics)
		if err != nil {
			return nil, err
		}
		// Each agent of a sharded fleet keeps its share of the answers.
		src = collector.NewShardedSource(remote, a.shard)
	} else {
		commit, err := a.scraper.PrepareConfig(*cfg, profs)
		if err != nil {
			return nil, err
		}
		src, commitSource = a.scraper, commit
	}
	commitCollector, err := a.coll.PrepareConfig(*cfg, src, profs)
	if err != nil {
		return nil, err
	}
	return func() {
		commitSource()
		commitCollector()
	}, nil
}

// prepareRules loads the rule files with the evaluation interval and the
// disabled rules of cfg.
func (a *daemon) prepareRules(cfg *config.Config) (func(), error) {
	files, err := ruleFiles(cfg, a.flags.configFile)
	if err != nil {
		return nil, err
	}
	commit, err := a.rules.Prepare(rules.Config{Files: files, Interval: time.Duration(cfg.Global.EvaluationInterval), Disabled: cfg.Rules.Disabled})
	if err != nil {
		return nil, err
	}
	return func() {
		commit()
		a.store.SetEvaluationInterval(time.Duration(cfg.Global.EvaluationInterval))
	}, nil
}

// prepareWorkflows builds the executor and the reloadable workflow
// options.
func (a *daemon) prepareWorkflows(cfg *config.Config) (func(), error) {
	live, err := workflowReloadable(cfg, a.flags, a.store)
	if err != nil {
		return nil, err
	}
	return func() {
		// It cannot fail: the controller needs only the executor built
		// above.
		if err := a.workflows.controller.ApplyConfig(live); err != nil {
			a.logger.Error("Applying the workflow configuration failed", "err", err)
		}
	}, nil
}
