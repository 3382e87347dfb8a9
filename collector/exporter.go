package collector

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/protobuf/proto"

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
// perfagent_setting_info, and writes them to the store (Append). It is
// apart from SignalsExporter because the signals are in the local TSDB
// already, while the settings are written there by the cycle as the
// agent's own metrics.
type SettingsExporter struct {
	c *Collector

	mtx sync.Mutex
	// exported holds, by instance, the series of the last Collect or
	// Append. An instance's settings rarely change, and a large fleet has
	// tens of thousands of them to export at every gathering and to write
	// at every cycle.
	exported map[string]*exportedSettings
	// appended holds, by instance, what the last Append wrote: a series
	// it wrote that the next one does not (a setting's value changed, an
	// instance left) gets a staleness marker, as a scrape would give it.
	appended map[string]*exportedSettings
}

// exportedSettings are the series of one instance's settings, exported
// and written to the store.
type exportedSettings struct {
	instance      string
	engine, model string
	settings      Settings
	series        []settingSeries
}

// settingSeries is one setting's series and its reference in the store.
type settingSeries struct {
	lset labels.Labels
	ref  storage.SeriesRef
}

// NewSettingsExporter exports the settings of c's latest snapshot.
func NewSettingsExporter(c *Collector) *SettingsExporter {
	return &SettingsExporter{c: c, exported: map[string]*exportedSettings{}}
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
	for _, ex := range e.current(snap) {
		for _, s := range ex.settingSeries() {
			ch <- settingMetric(s.lset)
		}
	}
}

// Append writes the settings of snap to app at its time, the series
// Collect exports, which is what a Prometheus scraping the agent would
// store. Nothing is written before a collection succeeds, as Collect
// exports nothing then.
func (e *SettingsExporter) Append(app storage.Appender, snap *Snapshot) error {
	if !e.c.Ready() {
		return nil
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	t := snap.Time.UnixMilli()
	current := e.current(snap)
	appended := make(map[string]*exportedSettings, len(current))
	for _, ex := range current {
		series := ex.settingSeries()
		for i := range series {
			s := &series[i]
			ref, err := app.Append(s.ref, s.lset, t, 1)
			if err != nil {
				return fmt.Errorf("appending %s: %w", s.lset, err)
			}
			s.ref = ref
		}
		appended[ex.instance] = ex
	}
	for instance, prev := range e.appended {
		if ex := appended[instance]; ex != prev {
			if err := appendStale(app, prev, ex, t); err != nil {
				return err
			}
		}
	}
	e.appended = appended
	return nil
}

// appendStale appends a staleness marker at t for each series of prev
// that next, the same instance's settings now (nil when it is gone), lacks.
func appendStale(app storage.Appender, prev, next *exportedSettings, t int64) error {
	var kept map[string]bool
	if next != nil {
		kept = make(map[string]bool, len(next.series))
		for _, s := range next.series {
			kept[s.lset.String()] = true
		}
	}
	for _, s := range prev.series {
		if kept[s.lset.String()] {
			continue
		}
		if _, err := app.Append(s.ref, s.lset, t, math.Float64frombits(value.StaleNaN)); err != nil && !errors.Is(err, storage.ErrOutOfOrderSample) {
			return fmt.Errorf("marking %s stale: %w", s.lset, err)
		}
	}
	return nil
}

// current returns what is exported for snap's instances, in their order:
// kept from the last call for an instance whose settings did not change,
// new for the others.
func (e *SettingsExporter) current(snap *Snapshot) []*exportedSettings {
	out := make([]*exportedSettings, len(snap.Instances))
	next := make(map[string]*exportedSettings, len(snap.Instances))
	for i, in := range snap.Instances {
		ex, ok := e.exported[in.Instance]
		if !ok || ex.engine != in.Engine || ex.model != in.Model || !maps.Equal(ex.settings, in.Settings) {
			ex = &exportedSettings{instance: in.Instance, engine: in.Engine, model: in.Model, settings: maps.Clone(in.Settings)}
		}
		next[in.Instance], out[i] = ex, ex
	}
	e.exported = next
	return out
}

// settingSeries returns the series of ex's settings, built on first use.
// A setting whose name, value or source is not valid UTF-8 has none: it
// could be neither exported nor stored.
func (ex *exportedSettings) settingSeries() []settingSeries {
	if ex.series != nil {
		return ex.series
	}
	ex.series = make([]settingSeries, 0, len(ex.settings))
	for name, st := range ex.settings {
		if !utf8.ValidString(name) || !utf8.ValidString(st.Value) || !utf8.ValidString(st.Source) {
			continue
		}
		ex.series = append(ex.series, settingSeries{lset: labels.FromStrings(model.MetricNameLabel, settingInfoName,
			signals.LabelInstance, ex.instance, signals.LabelEngine, ex.engine, signals.LabelModel, ex.model,
			"setting", name, "value", st.Value, "source", st.Source)})
	}
	return ex.series
}

// settingMetric is the exported metric of one setting's series. Its
// labels are written out only when it is gathered: a client_golang
// metric built ahead would keep a second copy of every setting's labels
// (about 8 MB at 1000 servers) between gatherings.
type settingMetric labels.Labels

// Desc implements prometheus.Metric.
func (m settingMetric) Desc() *prometheus.Desc { return settingInfoDesc }

// Write implements prometheus.Metric. The series' labels are sorted by
// name, as a metric's label pairs must be.
func (m settingMetric) Write(out *dto.Metric) error {
	lset := labels.Labels(m)
	out.Label = make([]*dto.LabelPair, 0, lset.Len()-1)
	lset.Range(func(l labels.Label) {
		if l.Name != model.MetricNameLabel {
			out.Label = append(out.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
		}
	})
	out.Gauge = &dto.Gauge{Value: proto.Float64(1)}
	return nil
}

// settingInfoName is the name of the settings' info metric.
const settingInfoName = "perfagent_setting_info"

// settingInfoDesc is the info metric of the engine settings the collector
// knows, one series per instance and setting.
var settingInfoDesc = prometheus.NewDesc(settingInfoName,
	"Engine setting of a model server (value 1): its name in snake_case, its value and where it was read (metrics, probe, config).",
	[]string{signals.LabelInstance, signals.LabelEngine, signals.LabelModel, "setting", "value", "source"}, nil)
