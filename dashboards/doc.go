// Package dashboards builds perfagent's Grafana dashboards as code: the
// fleet overview, one instance, workflows, and the agent itself. The JSON
// files next to this package are its output (make dashboards writes them;
// a test fails when they differ from what the code builds), read by
// Grafana's file provisioning and by the mixin.
//
// Every panel queries a Prometheus that scrapes the agent with
// honor_labels: true, so signals keep the model server's instance label
// while the agent's own metrics carry the agent's.
package dashboards
