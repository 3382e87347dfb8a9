// Package mixin renders perfagent's monitoring mixin (mixin.libsonnet, in
// the monitoring-mixins layout) into the files Prometheus and Grafana
// load: out/alerts.yaml, out/rules.yaml and out/dashboards/, and, with
// bottleneck detection inside Prometheus on, out/detection/. make mixin
// writes them; a test fails when the committed files differ, checks the
// rules as promtool does and runs the alerts' unit tests in tests/.
package mixin
