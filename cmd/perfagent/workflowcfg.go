package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonconfig "github.com/prometheus/common/config"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/signalstore"
	"github.com/optiinfra/perfagent/workflow"
)

// WorkflowConfig is the workflow section: who may approve, where approval
// requests go, and how changes are applied.
type WorkflowConfig struct {
	// Approvers are the users (basic-auth names of --web.config.file) who
	// may decide on gates, abort and roll back.
	Approvers []string `yaml:"approvers,omitempty" json:"approvers,omitempty"`
	// Alertmanagers receive approval requests and outcomes, as base URLs.
	Alertmanagers []collector.URL `yaml:"alertmanagers,omitempty" json:"alertmanagers,omitempty"`
	// ExternalURL is the agent's URL as people reach it, for links in
	// alerts; default http://<hostname>:<port of --web.listen-address>.
	ExternalURL string `yaml:"external_url,omitempty" json:"external_url,omitempty"`
	// Webhook and Exec are the executors; at most one.
	Webhook *WebhookConfig `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	Exec    *ExecConfig    `yaml:"exec,omitempty" json:"exec,omitempty"`
	// Waits of every workflow, unless a request sets its own.
	ApprovalTTL collector.Duration `yaml:"approval_ttl,omitempty" json:"approval_ttl,omitempty"`
	PauseTTL    collector.Duration `yaml:"pause_ttl,omitempty" json:"pause_ttl,omitempty"`
	Warmup      collector.Duration `yaml:"warmup,omitempty" json:"warmup,omitempty"`
	Window      collector.Duration `yaml:"window,omitempty" json:"window,omitempty"`
	// RollbackAttempts and RollbackBackoff pace the retries of a failed
	// rollback before the workflow needs attention.
	RollbackAttempts int                `yaml:"rollback_attempts,omitempty" json:"rollback_attempts,omitempty"`
	RollbackBackoff  collector.Duration `yaml:"rollback_backoff,omitempty" json:"rollback_backoff,omitempty"`
}

// WebhookConfig is the HMAC-signed webhook executor.
type WebhookConfig struct {
	URL        collector.URL       `yaml:"url" json:"url"`
	Secret     commonconfig.Secret `yaml:"secret,omitempty" json:"secret,omitempty"`
	SecretFile string              `yaml:"secret_file,omitempty" json:"secret_file,omitempty"`
	Timeout    collector.Duration  `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Retries    int                 `yaml:"retries,omitempty" json:"retries,omitempty"`
	// Read says the receiver answers read requests (operation "read") with
	// the current value, so a workflow can learn what each instance has
	// right before changing it.
	Read bool `yaml:"read,omitempty" json:"read,omitempty"`
}

// ExecConfig is the exec executor: an argv template run without a shell.
type ExecConfig struct {
	Argv    []string           `yaml:"argv" json:"argv"`
	Timeout collector.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// ReadArgv prints an instance's current value of the flag.
	ReadArgv []string `yaml:"read_argv,omitempty" json:"read_argv,omitempty"`
}

// Enabled reports whether workflows can run: an executor is configured.
func (c *WorkflowConfig) Enabled() bool { return c.Webhook != nil || c.Exec != nil }

// Validate checks the workflow section.
func (c *WorkflowConfig) Validate() []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &collector.FieldError{Path: "workflow." + path, Err: fmt.Errorf(format, args...)})
	}
	for i, a := range c.Approvers {
		if strings.TrimSpace(a) == "" {
			bad(fmt.Sprintf("approvers[%d]", i), "is empty")
		}
	}
	for i, u := range c.Alertmanagers {
		if err := collector.CheckHTTPURL(u); err != nil {
			bad(fmt.Sprintf("alertmanagers[%d]", i), "%v", err)
		}
	}
	if c.ExternalURL != "" {
		if p, err := url.Parse(c.ExternalURL); err != nil || p.Host == "" {
			bad("external_url", "%q is not a URL", c.ExternalURL)
		}
	}
	if c.Webhook != nil && c.Exec != nil {
		bad("webhook", "set either workflow.webhook or workflow.exec, not both")
	}
	if w := c.Webhook; w != nil {
		if err := collector.CheckHTTPURL(w.URL); err != nil {
			bad("webhook.url", "%v", err)
		}
		if (w.Secret == "") == (w.SecretFile == "") {
			bad("webhook.secret", "set exactly one of secret and secret_file: the webhook is signed with it")
		}
		if w.Retries < 0 {
			bad("webhook.retries", "must not be negative")
		}
	}
	if e := c.Exec; e != nil && len(e.Argv) == 0 {
		bad("exec.argv", "is empty: give the command and its arguments")
	}
	if c.RollbackAttempts < 0 {
		bad("rollback_attempts", "must not be negative")
	}
	if c.Enabled() && len(c.Approvers) == 0 {
		bad("approvers", "is empty: nobody could approve a workflow")
	}
	for _, d := range []struct {
		name string
		v    collector.Duration
	}{{"approval_ttl", c.ApprovalTTL}, {"pause_ttl", c.PauseTTL}, {"warmup", c.Warmup}, {"window", c.Window}, {"rollback_backoff", c.RollbackBackoff}} {
		if d.v < 0 {
			bad(d.name, "must not be negative")
		}
	}
	return errs
}

// settings are the configured waits; zero fields take the workflow
// package's defaults.
func (c *WorkflowConfig) settings() workflow.Settings {
	return workflow.Settings{
		ApprovalTTL: time.Duration(c.ApprovalTTL), PauseTTL: time.Duration(c.PauseTTL),
		Warmup: time.Duration(c.Warmup), Window: time.Duration(c.Window),
	}
}

// executor builds the configured executor.
func (c *WorkflowConfig) executor() (workflow.Executor, error) {
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
	sender     *workflow.AlertSender
}

// newWorkflows opens the workflow store under the storage path and builds
// the executor, the Alertmanager sender and the controller. Validation
// reads signals from the local TSDB, which holds them in both modes.
func newWorkflows(cfg *Config, f daemonFlags, store *signalstore.Store, reg prometheus.Registerer, logger *slog.Logger) (*workflows, func(), error) {
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
	// The sender exists without Alertmanagers too, so that a reload can
	// add some.
	wf.sender, err = workflow.NewAlertSender(workflow.AlertSenderOptions{URLs: rawURLs(cfg.Workflow.Alertmanagers), Metrics: metrics, Logger: logger.With("component", "alerts")})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	interval := time.Duration(cfg.Global.EvaluationInterval)
	wf.controller, err = workflow.NewController(workflow.ControllerOptions{
		Store: ws, Source: store, Alerts: wf.sender,
		Executor: live.Executor, Validator: live.Validator, Approvers: live.Approvers, ExternalURL: live.ExternalURL,
		Defaults: live.Defaults, RollbackAttempts: live.RollbackAttempts, RollbackBackoff: live.RollbackBackoff,
		IngestionLag: live.IngestionLag,
		AgentName:    "perfagent", TickInterval: interval, Metrics: metrics,
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
func workflowReloadable(cfg *Config, f daemonFlags, store *signalstore.Store) (workflow.Reloadable, error) {
	exec, err := cfg.Workflow.executor()
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
		Defaults:         cfg.Workflow.settings(),
		RollbackAttempts: cfg.Workflow.RollbackAttempts, RollbackBackoff: time.Duration(cfg.Workflow.RollbackBackoff),
		// Validation reads the local TSDB, where signals land one
		// evaluation after they happen.
		IngestionLag: 2 * interval,
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

// rawURLs are the URLs to connect to, passwords included.
func rawURLs(us []collector.URL) []string {
	raw := make([]string, len(us))
	for i, u := range us {
		raw[i] = u.Raw()
	}
	return raw
}
