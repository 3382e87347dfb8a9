package config

import (
	"fmt"
	"net/url"
	"strings"

	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"go.yaml.in/yaml/v3"
)

// The alerting section is Prometheus's own type, so an Alertmanager is
// configured exactly as in prometheus.yml: static_configs, scheme,
// path_prefix, basic_auth, tls_config, timeout, api_version, and
// alert_relabel_configs. Only static_configs discover Alertmanagers: the
// agent registers no other service discovery.

// validateAlerting checks the alerting section with Prometheus's checks.
func (c *Config) validateAlerting() []error {
	var errs []error
	for i, rc := range c.Alerting.AlertRelabelConfigs {
		if err := rc.Validate(model.UTF8Validation); err != nil {
			errs = append(errs, fieldErr(fmt.Sprintf("alerting.alert_relabel_configs[%d]", i), "%v", err))
		}
	}
	for i, am := range c.Alerting.AlertmanagerConfigs {
		if am == nil {
			errs = append(errs, fieldErr(fmt.Sprintf("alerting.alertmanagers[%d]", i), "is empty: give it static_configs: [{targets: [\"host:9093\"]}]"))
			continue
		}
		if err := am.Validate(model.UTF8Validation); err != nil {
			errs = append(errs, fieldErr(fmt.Sprintf("alerting.alertmanagers[%d]", i), "%v", err))
		}
		if len(am.ServiceDiscoveryConfigs) == 0 {
			errs = append(errs, fieldErr(fmt.Sprintf("alerting.alertmanagers[%d]", i), "lists no Alertmanager: add static_configs: [{targets: [\"host:9093\"]}]"))
		}
	}
	return errs
}

// migrateWorkflowAlertmanagers turns the deprecated workflow.alertmanagers
// URLs into entries of alerting.alertmanagers, so that both kinds of alert
// leave through one notifier, and says how to write them instead.
func (c *Config) migrateWorkflowAlertmanagers() {
	if len(c.Workflow.Alertmanagers) == 0 {
		return
	}
	added := make(promconfig.AlertmanagerConfigs, 0, len(c.Workflow.Alertmanagers))
	for _, u := range c.Workflow.Alertmanagers {
		added = append(added, alertmanagerFromURL(u))
	}
	c.Alerting.AlertmanagerConfigs = append(c.Alerting.AlertmanagerConfigs, added...)
	c.Workflow.Alertmanagers = nil
	// The suggestion hides passwords, as every printed config does.
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"alerting": map[string]any{"alertmanagers": added}}); err != nil {
		b.Reset()
		b.WriteString("alerting:\n  alertmanagers: …\n")
	}
	c.warnings = append(c.warnings, "workflow.alertmanagers is deprecated: the approval alerts now use the top-level alerting section, as bottleneck alerts do. "+
		"The URLs were read as the following; replace workflow.alertmanagers with it (and put the real password back in basic_auth):\n"+strings.TrimRight(b.String(), "\n"))
}

// alertmanagerFromURL is the alerting entry that posts to one base URL,
// with its credentials as basic auth.
func alertmanagerFromURL(u URL) *promconfig.AlertmanagerConfig {
	am := promconfig.DefaultAlertmanagerConfig
	p, err := url.Parse(u.Raw())
	if err != nil {
		// Validate has checked every URL; keep the entry inert.
		return &am
	}
	am.Scheme = p.Scheme
	am.PathPrefix = strings.TrimRight(p.Path, "/")
	if p.User != nil {
		pw, _ := p.User.Password()
		am.HTTPClientConfig.BasicAuth = &commonconfig.BasicAuth{Username: p.User.Username(), Password: commonconfig.Secret(pw)}
	}
	am.ServiceDiscoveryConfigs = discovery.Configs{discovery.StaticConfig{
		{Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(p.Host)}}, Source: "0"},
	}}
	return &am
}

// AlertmanagerTargets lists the static targets of every Alertmanager entry,
// keyed as Prometheus's notifier keys its configurations (config-0, …).
func (c *Config) AlertmanagerTargets() map[string][]*targetgroup.Group {
	out := make(map[string][]*targetgroup.Group, len(c.Alerting.AlertmanagerConfigs))
	for k, am := range c.Alerting.AlertmanagerConfigs.ToMap() {
		var groups []*targetgroup.Group
		for _, sd := range am.ServiceDiscoveryConfigs {
			if static, ok := sd.(discovery.StaticConfig); ok {
				groups = append(groups, static...)
			}
		}
		out[k] = groups
	}
	return out
}

// Warnings are what the configuration asks to change without being wrong:
// deprecated fields, each with what to write instead.
func (c *Config) Warnings() []string { return c.warnings }
