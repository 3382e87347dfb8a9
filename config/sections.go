package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"strings"
	"time"

	commonconfig "github.com/prometheus/common/config"
	promconfig "github.com/prometheus/prometheus/config"
)

// Config is perfagent's whole configuration file: the two clocks, the data
// source, per-instance facts, collector options, the bottleneck rules, the
// recommender and workflows. Every field except the source has a default.
type Config struct {
	Global      GlobalConfig      `yaml:"global" json:"global"`
	Source      SourceConfig      `yaml:"source" json:"source"`
	Instances   []InstanceConfig  `yaml:"instances,omitempty" json:"instances,omitempty"`
	Collector   CollectorConfig   `yaml:"collector" json:"collector"`
	Rules       RulesConfig       `yaml:"rules" json:"rules"`
	Recommender RecommenderConfig `yaml:"recommender" json:"recommender"`
	// Cost prices GPU time; without prices no cost is computed.
	Cost     CostConfig     `yaml:"cost" json:"cost"`
	Workflow WorkflowConfig `yaml:"workflow" json:"workflow"`
	// Alerting is where bottleneck alerts and approval requests go, in
	// Prometheus's shape.
	Alerting promconfig.AlertingConfig `yaml:"alerting,omitempty" json:"alerting"`

	warnings []string
}

// GlobalConfig holds the clocks, named as in Prometheus.
type GlobalConfig struct {
	// ScrapeInterval is how often the embedded source scrapes targets.
	ScrapeInterval Duration `yaml:"scrape_interval" json:"scrape_interval"`
	// ScrapeTimeout bounds one scrape.
	ScrapeTimeout Duration `yaml:"scrape_timeout" json:"scrape_timeout"`
	// EvaluationInterval is how often signals are computed.
	EvaluationInterval Duration `yaml:"evaluation_interval" json:"evaluation_interval"`
}

// SourceConfig chooses where metrics come from: exactly one of Prometheus
// (remote mode) or Targets (embedded mode).
type SourceConfig struct {
	Prometheus *RemoteConfig  `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
	Targets    []TargetConfig `yaml:"targets,omitempty" json:"targets,omitempty"`
}

// RemoteConfig points at anything that serves the Prometheus HTTP query API.
type RemoteConfig struct {
	URL URL `yaml:"url" json:"url"`
	// HTTPClientConfig carries basic auth, bearer tokens, TLS and proxies.
	HTTPClientConfig commonconfig.HTTPClientConfig `yaml:",inline" json:"http_client_config"`
	// QueryTimeout bounds one query, including its retries.
	QueryTimeout Duration `yaml:"query_timeout" json:"query_timeout"`
	// Retries is how many times a failed query is tried again.
	Retries int `yaml:"retries" json:"retries"`
	// RetryBackoff is the first wait between tries; it doubles each time.
	RetryBackoff Duration `yaml:"retry_backoff" json:"retry_backoff"`
	// Backfill is how much signal history is computed with range queries at
	// start, so rules and the API have history at once.
	Backfill Duration `yaml:"backfill" json:"backfill"`
}

// TargetConfig is one model server that the embedded source scrapes.
type TargetConfig struct {
	// URL of the server's metrics page, e.g. http://10.0.0.7:8000/metrics.
	URL URL `yaml:"url" json:"url"`
	// Engine pins the engine instead of detecting it.
	Engine string `yaml:"engine,omitempty" json:"engine,omitempty"`
	// Model names the served model where the engine does not say.
	Model string `yaml:"model,omitempty" json:"model,omitempty"`
	// Settings are engine settings the server does not expose.
	Settings map[string]string `yaml:"settings,omitempty" json:"settings,omitempty"`
	// Accelerator is the GPU type the server runs on, a key of
	// cost.gpu_hour_prices.
	Accelerator string `yaml:"accelerator,omitempty" json:"accelerator,omitempty"`
	// GPUs is how many GPUs the server holds; zero takes its tensor
	// parallelism.
	GPUs int `yaml:"gpus,omitempty" json:"gpus,omitempty"`
}

// InstanceConfig gives facts about one instance, matched by its instance
// label, in either mode.
type InstanceConfig struct {
	Instance string            `yaml:"instance" json:"instance"`
	Engine   string            `yaml:"engine,omitempty" json:"engine,omitempty"`
	Model    string            `yaml:"model,omitempty" json:"model,omitempty"`
	Settings map[string]string `yaml:"settings,omitempty" json:"settings,omitempty"`
	// Accelerator and GPUs are as for a target.
	Accelerator string `yaml:"accelerator,omitempty" json:"accelerator,omitempty"`
	GPUs        int    `yaml:"gpus,omitempty" json:"gpus,omitempty"`
}

// CollectorConfig tunes signal computation.
type CollectorConfig struct {
	// RateWindow replaces the range of every range selector in the engine
	// profiles; it must cover at least two scrapes of the source.
	RateWindow Duration `yaml:"rate_window" json:"rate_window"`
	// ProfileFiles are extra engine profiles (recording-rule files), as
	// paths or globs relative to the configuration file.
	ProfileFiles []string `yaml:"profile_files,omitempty" json:"profile_files,omitempty"`
	// Probe controls HTTP probes of the engines' info endpoints.
	Probe ProbeConfig `yaml:"probe" json:"probe"`
}

// ProbeConfig controls how engine settings are read from the servers' own
// info endpoints (SGLang /get_server_info, TGI /info, vLLM /v1/models).
type ProbeConfig struct {
	Enabled  bool     `yaml:"enabled" json:"enabled"`
	Interval Duration `yaml:"interval" json:"interval"`
	Timeout  Duration `yaml:"timeout" json:"timeout"`
}

// Default returns the configuration that an empty file means.
func Default() Config {
	return Config{
		Recommender: DefaultRecommenderConfig(),
		Cost:        DefaultCostConfig(),
		Global: GlobalConfig{
			ScrapeInterval:     Duration(15 * time.Second),
			ScrapeTimeout:      Duration(10 * time.Second),
			EvaluationInterval: Duration(15 * time.Second),
		},
		Collector: CollectorConfig{
			RateWindow: Duration(time.Minute),
			Probe: ProbeConfig{
				Enabled:  true,
				Interval: Duration(5 * time.Minute),
				Timeout:  Duration(5 * time.Second),
			},
		},
	}
}

// DefaultRemoteConfig holds the defaults of a source.prometheus section.
func DefaultRemoteConfig() RemoteConfig {
	return RemoteConfig{
		HTTPClientConfig: commonconfig.DefaultHTTPClientConfig,
		QueryTimeout:     Duration(30 * time.Second),
		Retries:          3,
		RetryBackoff:     Duration(500 * time.Millisecond),
		Backfill:         Duration(15 * time.Minute),
	}
}

// UnmarshalYAML applies the defaults of the whole file before decoding it,
// as Prometheus's configuration does.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	*c = Default()
	type plain Config
	return unmarshal((*plain)(c))
}

// UnmarshalYAML applies the defaults of a source.prometheus section before
// decoding it.
func (c *RemoteConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultRemoteConfig()
	type plain RemoteConfig
	return unmarshal((*plain)(c))
}

// FieldError is a configuration error tied to one field, named by its path
// in the file ("source.targets[1].url"), so callers can point at its line.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(path string, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

// ErrNoSource is returned when the configuration names no data source.
var ErrNoSource = errors.New("no data source: set source.prometheus.url (remote mode) or source.targets (embedded mode)")

// Validate checks every value of every section and returns one
// *FieldError per bad field.
func (c *Config) Validate() []error {
	errs := c.validateCollection()
	errs = append(errs, c.Rules.Validate()...)
	errs = append(errs, c.Recommender.Validate()...)
	errs = append(errs, c.validateCost()...)
	errs = append(errs, c.Workflow.Validate()...)
	errs = append(errs, c.validateAlerting()...)
	return append(errs, c.validateWorkflowWindow()...)
}

// validateCollection checks the clocks, the source, the instances and the
// collector section.
func (c *Config) validateCollection() []error {
	var errs []error
	positive := func(path string, d Duration) {
		if d <= 0 {
			errs = append(errs, fieldErr(path, "must be greater than zero"))
		}
	}
	positive("global.scrape_interval", c.Global.ScrapeInterval)
	positive("global.scrape_timeout", c.Global.ScrapeTimeout)
	positive("global.evaluation_interval", c.Global.EvaluationInterval)
	if c.Global.ScrapeTimeout > c.Global.ScrapeInterval {
		errs = append(errs, fieldErr("global.scrape_timeout", "%s is longer than global.scrape_interval %s", c.Global.ScrapeTimeout, c.Global.ScrapeInterval))
	}
	positive("collector.rate_window", c.Collector.RateWindow)
	if c.Source.Targets == nil && c.Source.Prometheus == nil {
		errs = append(errs, &FieldError{Path: "source", Err: ErrNoSource})
	}
	if c.Source.Targets != nil && c.Source.Prometheus != nil {
		errs = append(errs, fieldErr("source", "set either source.prometheus or source.targets, not both"))
	}
	if p := c.Source.Prometheus; p != nil {
		if err := CheckHTTPURL(p.URL); err != nil {
			errs = append(errs, fieldErr("source.prometheus.url", "%v", err))
		} else if u, _ := url.Parse(p.URL.Raw()); u.User != nil {
			errs = append(errs, fieldErr("source.prometheus.url", "%q carries credentials: write them in source.prometheus.basic_auth, where they are kept secret and used", p.URL))
		}
		if err := p.HTTPClientConfig.Validate(); err != nil {
			errs = append(errs, fieldErr("source.prometheus", "%v", err))
		}
		positive("source.prometheus.query_timeout", p.QueryTimeout)
		positive("source.prometheus.retry_backoff", p.RetryBackoff)
		if p.Retries < 0 {
			errs = append(errs, fieldErr("source.prometheus.retries", "must not be negative"))
		}
		if p.Backfill < 0 {
			errs = append(errs, fieldErr("source.prometheus.backfill", "must not be negative"))
		}
	}
	if c.Source.Targets != nil && len(c.Source.Targets) == 0 {
		errs = append(errs, fieldErr("source.targets", "is empty: list at least one model server URL"))
	}
	seen := map[string]int{}
	for i, t := range c.Source.Targets {
		path := fmt.Sprintf("source.targets[%d]", i)
		if err := CheckHTTPURL(t.URL); err != nil {
			errs = append(errs, fieldErr(path+".url", "%v", err))
			continue
		}
		if u, _ := url.Parse(t.URL.Raw()); u.User != nil {
			errs = append(errs, fieldErr(path+".url", "%q carries credentials, which the embedded scraper does not send; model servers' metrics pages are read without authentication, so remove them", t.URL))
			continue
		}
		inst := t.Instance()
		if j, dup := seen[inst]; dup {
			errs = append(errs, fieldErr(path+".url", "instance %s is already listed as source.targets[%d]", inst, j))
		}
		seen[inst] = i
		if err := CheckEngineName(t.Engine); err != nil {
			errs = append(errs, fieldErr(path+".engine", "%v", err))
		}
	}
	if c.Source.Prometheus == nil && c.Collector.RateWindow < 2*c.Global.ScrapeInterval {
		errs = append(errs, fieldErr("collector.rate_window", "%s covers fewer than two scrapes at global.scrape_interval %s; rates need two samples", c.Collector.RateWindow, c.Global.ScrapeInterval))
	}
	seenInst := map[string]int{}
	for i, in := range c.Instances {
		path := fmt.Sprintf("instances[%d]", i)
		if in.Instance == "" {
			errs = append(errs, fieldErr(path+".instance", "is required: the instance label of the model server, e.g. 10.0.0.7:8000"))
		}
		if j, dup := seenInst[in.Instance]; dup {
			errs = append(errs, fieldErr(path+".instance", "%s is already listed as instances[%d]", in.Instance, j))
		}
		seenInst[in.Instance] = i
		if err := CheckEngineName(in.Engine); err != nil {
			errs = append(errs, fieldErr(path+".engine", "%v", err))
		}
	}
	for i, f := range c.Collector.ProfileFiles {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, fieldErr(fmt.Sprintf("collector.profile_files[%d]", i), "is empty"))
		}
	}
	if c.Collector.Probe.Enabled {
		positive("collector.probe.interval", c.Collector.Probe.Interval)
		positive("collector.probe.timeout", c.Collector.Probe.Timeout)
	}
	return errs
}

var engineName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// CheckEngineName checks that name can be an engine label value and a
// profile group name: lower case letters, digits and underscores.
func CheckEngineName(name string) error {
	if name != "" && !engineName.MatchString(name) {
		return fmt.Errorf("%q is not an engine name (lower-case letters, digits and _; built in: vllm, sglang, tgi, trtllm, llamacpp)", name)
	}
	return nil
}

// Instance is the instance label the target's samples get: the URL's
// host and port as written, as Prometheus 3 labels targets.
func (t TargetConfig) Instance() string {
	u, err := url.Parse(t.URL.Raw())
	if err != nil {
		return t.URL.String()
	}
	return u.Host
}

// InstanceFacts merges what the configuration says about each instance:
// the instances section and, in embedded mode, the targets.
func (c *Config) InstanceFacts() map[string]InstanceConfig {
	facts := make(map[string]InstanceConfig, len(c.Instances)+len(c.Source.Targets))
	for _, t := range c.Source.Targets {
		facts[t.Instance()] = InstanceConfig{Instance: t.Instance(), Engine: t.Engine, Model: t.Model, Settings: t.Settings, Accelerator: t.Accelerator, GPUs: t.GPUs}
	}
	for _, in := range c.Instances {
		f := facts[in.Instance]
		f.Instance = in.Instance
		if in.Engine != "" {
			f.Engine = in.Engine
		}
		if in.Model != "" {
			f.Model = in.Model
		}
		if in.Accelerator != "" {
			f.Accelerator = in.Accelerator
		}
		if in.GPUs > 0 {
			f.GPUs = in.GPUs
		}
		if len(in.Settings) > 0 {
			merged := maps.Clone(f.Settings)
			if merged == nil {
				merged = map[string]string{}
			}
			maps.Copy(merged, in.Settings)
			f.Settings = merged
		}
		facts[in.Instance] = f
	}
	return facts
}

// Mode names the source the configuration selects.
func (c *Config) Mode() string {
	if c.Source.Prometheus != nil {
		return "remote"
	}
	return "embedded"
}
