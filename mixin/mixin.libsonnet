// perfagent's monitoring mixin: alerts about the agent, optional
// bottleneck detection inside Prometheus, and the dashboards.
// make mixin renders it into out/; docs/alerting.md explains the knobs.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
