package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/shard"
	"github.com/optiinfra/perfagent/signalstore"
	"github.com/optiinfra/perfagent/workflow"
)

// workflowSettings are the configured waits; zero fields take the
// workflow package's defaults.
func workflowSettings(c *config.WorkflowConfig) workflow.Settings {
	return workflow.Settings{
		ApprovalTTL: time.Duration(c.ApprovalTTL), PauseTTL: time.Duration(c.PauseTTL),
		Warmup: time.Duration(c.Warmup), Window: time.Duration(c.Window),
	}
}

// newExecutor builds the configured executor.
func newExecutor(c *config.WorkflowConfig) (workflow.Executor, error) {
	if w := c.Webhook; w != nil {
		secret := []byte(w.Secret)
		if w.SecretFile != "" {
			b, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("workflow.webhook.secret_file: %w", err)
			}
			secret = []byte(strings.TrimSpace(string(b)))
		}
		return workflow.NewWebhookExecutor(workflow.WebhookOptions{URL: w.URL.Raw(), Secret: secret, Timeout: time.Duration(w.Timeout), Retries: w.Retries, Read: w.Read})
	}
	if e := c.Exec; e != nil {
		return workflow.NewExecExecutor(workflow.ExecOptions{Argv: e.Argv, ReadArgv: e.ReadArgv, Timeout: time.Duration(e.Timeout)})
	}
	return nil, errors.New("no workflow executor configured")
}

// workflows are the running workflow parts.
type workflows struct {
	controller *workflow.Controller
}

// newWorkflows opens the workflow store under the storage path and builds
// the executor and the controller, whose alerts go to alerts. Validation
// reads signals from the local TSDB, which holds them in both modes.
func newWorkflows(cfg *config.Config, f daemonFlags, sh shard.Shard, store *signalstore.Store, alerts workflow.AlertSink, reg prometheus.Registerer, logger *slog.Logger) (*workflows, func(), error) {
	live, err := workflowReloadable(cfg, f, store)
	if err != nil {
		return nil, nil, err
	}
	ws, err := workflow.OpenBoltStore(filepath.Join(f.storagePath, "workflows"))
	if err != nil {
		return nil, nil, err
	}
	closeStore := func() { _ = ws.Close() }
	metrics := workflow.NewMetrics(reg)
	reg.MustRegister(workflow.NewWorkflowsCollector(ws))
	wf := &workflows{}
	wf.controller, err = workflow.NewController(workflow.ControllerOptions{
		Store: ws, Source: store, Alerts: alerts,
		Executor: live.Executor, Validator: live.Validator, Approvers: live.Approvers, ExternalURL: live.ExternalURL,
		Defaults: live.Defaults, RollbackAttempts: live.RollbackAttempts, RollbackBackoff: live.RollbackBackoff,
		IngestionLag: live.IngestionLag, TickInterval: live.TickInterval,
		ResendInterval: f.resendDelay,
		AgentName:      "perfagent", Metrics: metrics, Shard: sh,
		Logger: logger.With("component", "workflow"),
	})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return wf, closeStore, nil
}

// workflowReloadable builds the parts of the workflow section a reload
// may change: the executor, the validator's clocks, approvers, waits and
// links.
func workflowReloadable(cfg *config.Config, f daemonFlags, store *signalstore.Store) (workflow.Reloadable, error) {
	exec, err := newExecutor(&cfg.Workflow)
	if err != nil {
		return workflow.Reloadable{}, err
	}
	interval := time.Duration(cfg.Global.EvaluationInterval)
	return workflow.Reloadable{
		Executor: exec,
		// Signals are stored once per evaluation interval; a counter reset
		// shows in llm_engine_restarts for one rate window.
		Validator: workflow.NewValidator(workflow.ValidatorOptions{Source: store, Step: interval,
			RestartLookback: time.Duration(cfg.Collector.RateWindow) + interval}),
		Approvers: cfg.Workflow.Approvers, ExternalURL: externalURL(cfg.Workflow.ExternalURL, f.listenAddress),
		Defaults:         workflowSettings(&cfg.Workflow),
		RollbackAttempts: cfg.Workflow.RollbackAttempts, RollbackBackoff: time.Duration(cfg.Workflow.RollbackBackoff),
		// Validation reads the local TSDB, where signals land one
		// evaluation after they happen.
		IngestionLag: 2 * interval,
		TickInterval: interval,
	}, nil
}

// externalURL is the configured URL, or one made of the host name and the
// listen port.
func externalURL(configured, listen string) string {
	if configured != "" {
		return strings.TrimRight(configured, "/")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
