package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	commonconfig "github.com/prometheus/common/config"
)

// The workflow validator's needs, for checking the analysis window: it
// judges a metric on at least WorkflowMinSamples values per side, one per
// evaluation interval, and a workflow without a window of its own uses
// DefaultWorkflowWindow. The workflow package keeps the same numbers.
const (
	WorkflowMinSamples    = 20
	DefaultWorkflowWindow = 15 * time.Minute
)

// WorkflowConfig is the workflow section: who may approve, where approval
// requests go, and how changes are applied.
type WorkflowConfig struct {
	// Approvers are the users (basic-auth names of --web.config.file) who
	// may decide on gates, abort and roll back.
	Approvers []string `yaml:"approvers,omitempty" json:"approvers,omitempty"`
	// Alertmanagers is deprecated: Load moves these base URLs into the
	// top-level alerting section, with a warning.
	Alertmanagers []URL `yaml:"alertmanagers,omitempty" json:"alertmanagers,omitempty"`
	// ExternalURL is the agent's URL as people reach it, for links in
	// alerts; default http://<hostname>:<port of --web.listen-address>.
	ExternalURL string `yaml:"external_url,omitempty" json:"external_url,omitempty"`
	// Webhook and Exec are the executors; at most one.
	Webhook *WebhookConfig `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	Exec    *ExecConfig    `yaml:"exec,omitempty" json:"exec,omitempty"`
	// Waits of every workflow, unless a request sets its own.
	ApprovalTTL Duration `yaml:"approval_ttl,omitempty" json:"approval_ttl,omitempty"`
	PauseTTL    Duration `yaml:"pause_ttl,omitempty" json:"pause_ttl,omitempty"`
	Warmup      Duration `yaml:"warmup,omitempty" json:"warmup,omitempty"`
	Window      Duration `yaml:"window,omitempty" json:"window,omitempty"`
	// RollbackAttempts and RollbackBackoff pace the retries of a failed
	// rollback before the workflow needs attention.
	RollbackAttempts int      `yaml:"rollback_attempts,omitempty" json:"rollback_attempts,omitempty"`
	RollbackBackoff  Duration `yaml:"rollback_backoff,omitempty" json:"rollback_backoff,omitempty"`
}

// WebhookConfig is the HMAC-signed webhook executor.
type WebhookConfig struct {
	URL        URL                 `yaml:"url" json:"url"`
	Secret     commonconfig.Secret `yaml:"secret,omitempty" json:"secret,omitempty"`
	SecretFile string              `yaml:"secret_file,omitempty" json:"secret_file,omitempty"`
	Timeout    Duration            `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Retries    int                 `yaml:"retries,omitempty" json:"retries,omitempty"`
	// Read says the receiver answers read requests (operation "read") with
	// the current value, so a workflow can learn what each instance has
	// right before changing it.
	Read bool `yaml:"read,omitempty" json:"read,omitempty"`
}

// ExecConfig is the exec executor: an argv template run without a shell.
type ExecConfig struct {
	Argv    []string `yaml:"argv" json:"argv"`
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// ReadArgv prints an instance's current value of the flag.
	ReadArgv []string `yaml:"read_argv,omitempty" json:"read_argv,omitempty"`
}

// Enabled reports whether workflows can run: an executor is configured.
func (c *WorkflowConfig) Enabled() bool { return c.Webhook != nil || c.Exec != nil }

// Validate checks the workflow section.
func (c *WorkflowConfig) Validate() []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: "workflow." + path, Err: fmt.Errorf(format, args...)})
	}
	for i, a := range c.Approvers {
		if strings.TrimSpace(a) == "" {
			bad(fmt.Sprintf("approvers[%d]", i), "is empty")
		}
	}
	for i, u := range c.Alertmanagers {
		if err := CheckHTTPURL(u); err != nil {
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
		if err := CheckHTTPURL(w.URL); err != nil {
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
		v    Duration
	}{{"approval_ttl", c.ApprovalTTL}, {"pause_ttl", c.PauseTTL}, {"warmup", c.Warmup}, {"window", c.Window}, {"rollback_backoff", c.RollbackBackoff}} {
		if d.v < 0 {
			bad(d.name, "must not be negative")
		}
	}
	return errs
}

// validateWorkflowWindow refuses an analysis window that cannot hold the
// samples validation needs: signals are stored once per evaluation
// interval, so a shorter window would pause every stage for lack of data.
func (c *Config) validateWorkflowWindow() []error {
	if !c.Workflow.Enabled() {
		return nil
	}
	window, path := time.Duration(c.Workflow.Window), "workflow.window"
	if window <= 0 {
		window, path = DefaultWorkflowWindow, "global.evaluation_interval"
	}
	interval := time.Duration(c.Global.EvaluationInterval)
	if interval <= 0 || window >= WorkflowMinSamples*interval {
		return nil
	}
	return []error{&FieldError{Path: path, Err: fmt.Errorf(
		"a workflow window of %s holds %d samples at an evaluation interval of %s, and validation needs %d per side: make workflow.window at least %s",
		window, int(window/interval), interval, WorkflowMinSamples, WorkflowMinSamples*interval)}}
}
