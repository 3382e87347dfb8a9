package collector

import (
	"maps"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/signals"
)

// SignalsExporter re-exports the latest snapshot's signals as gauges with
// the model server's identity labels (instance, engine, model), to be
// scraped with honor_labels: true, as federation is.
type SignalsExporter struct {
	c    *Collector
	help map[string]string
}

// NewSignalsExporter exports c's latest snapshot.
func NewSignalsExporter(c *Collector) *SignalsExporter {
	help := map[string]string{}
	for _, s := range signals.All() {
		help[s.Name] = s.Help
		if s.Unit != "" {
			help[s.Name] += " Unit: " + s.Unit + "."
		}
	}
	return &SignalsExporter{c: c, help: help}
}

// Describe sends nothing: the exporter is unchecked, since profiles loaded
// from files may record signals that are not known in advance.
func (e *SignalsExporter) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (e *SignalsExporter) Collect(ch chan<- prometheus.Metric) {
	// While the source fails, export nothing rather than old values: the
	// series go stale in Prometheus, as a down target's do.
	snap := e.c.Latest()
	if snap == nil || !e.c.Ready() {
		return
	}
	descs := map[string]*prometheus.Desc{}
	for _, s := range snap.Samples {
		name := s.Labels.Get(model.MetricNameLabel)
		// Identity labels are always present, empty when unknown, so
		// every series of a family has the same label names.
		names := []string{signals.LabelInstance, signals.LabelEngine, signals.LabelModel}
		values := []string{s.Labels.Get(signals.LabelInstance), s.Labels.Get(signals.LabelEngine), s.Labels.Get(signals.LabelModel)}
		s.Labels.Range(func(l labels.Label) {
			switch l.Name {
			case model.MetricNameLabel, signals.LabelInstance, signals.LabelEngine, signals.LabelModel:
				return
			}
			names = append(names, l.Name)
			values = append(values, l.Value)
		})
		key := name + "\xff" + strings.Join(names, ",")
		d, ok := descs[key]
		if !ok {
			help := e.help[name]
			if help == "" {
				help = "Signal " + name + " recorded by an engine profile."
			}
			d = prometheus.NewDesc(name, help, names, nil)
			descs[key] = d
		}
		// The quantile label is reserved for summaries, so latency signals
		// are untyped, as Prometheus's /federate exposes recorded series.
		typ := prometheus.GaugeValue
		if s.Labels.Has(signals.LabelQuantile) {
			typ = prometheus.UntypedValue
		}
		m, err := prometheus.NewConstMetric(d, typ, s.Value, values...)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(d, err)
			continue
		}
		ch <- m
	}
}

// SettingsExporter exports the latest snapshot's engine settings as
// perfagent_setting_info. It is apart from SignalsExporter because the
// signals are in the local TSDB already, while the settings are written
// there only as the agent's own metrics.
type SettingsExporter struct {
	c *Collector

	mtx sync.Mutex
	// exported holds, by instance, the metrics of the last Collect. An
	// instance's settings rarely change, and a large fleet has tens of
	// thousands of them to export at every gathering.
	exported map[string]exportedSettings
}

// exportedSettings are the metrics of one instance's settings.
type exportedSettings struct {
	engine, model string
	settings      Settings
	metrics       []prometheus.Metric
}

// NewSettingsExporter exports the settings of c's latest snapshot.
func NewSettingsExporter(c *Collector) *SettingsExporter {
	return &SettingsExporter{c: c, exported: map[string]exportedSettings{}}
}

// Describe implements prometheus.Collector.
func (e *SettingsExporter) Describe(ch chan<- *prometheus.Desc) { ch <- settingInfoDesc }

// Collect implements prometheus.Collector.
func (e *SettingsExporter) Collect(ch chan<- prometheus.Metric) {
	snap := e.c.Latest()
	if snap == nil || !e.c.Ready() {
		return
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	next := make(map[string]exportedSettings, len(snap.Instances))
	for _, in := range snap.Instances {
		ex, ok := e.exported[in.Instance]
		if !ok || ex.engine != in.Engine || ex.model != in.Model || !maps.Equal(ex.settings, in.Settings) {
			ex = exportedSettings{engine: in.Engine, model: in.Model, settings: maps.Clone(in.Settings)}
			for name, st := range in.Settings {
				// A value a server reports is not trusted to be valid UTF-8.
				m, err := prometheus.NewConstMetric(settingInfoDesc, prometheus.GaugeValue, 1, in.Instance, in.Engine, in.Model, name, st.Value, st.Source)
				if err != nil {
					m = prometheus.NewInvalidMetric(settingInfoDesc, err)
				}
				ex.metrics = append(ex.metrics, m)
			}
		}
		next[in.Instance] = ex
		for _, m := range ex.metrics {
			ch <- m
		}
	}
	e.exported = next
}

// settingInfoDesc is the info metric of the engine settings the collector
// knows, one series per instance and setting.
var settingInfoDesc = prometheus.NewDesc("perfagent_setting_info",
	"Engine setting of a model server (value 1): its name in snake_case, its value and where it was read (metrics, probe, config).",
	[]string{signals.LabelInstance, signals.LabelEngine, signals.LabelModel, "setting", "value", "source"}, nil)
