package collector

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

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
//
// It is a prometheus.Gatherer, not a Collector: it builds its families
// itself, in the order a registry would serve them. At a thousand
// instances a cycle has some 31,000 signal series; gathered through
// registries, which check each series (label names, UTF-8, duplicates)
// and sort every family, they took 6 % of the agent's CPU when a
// Prometheus scraped it every cycle. The snapshot already ensures most
// of what the checks look for: one series per label set, names checked
// when the profile was loaded. What it does not ensure, Gather checks:
// a series with a label that is not valid UTF-8 is left out.
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

// Gather implements prometheus.Gatherer.
func (e *SignalsExporter) Gather() ([]*dto.MetricFamily, error) {
	// While the source fails, export nothing rather than old values: the
	// series go stale in Prometheus, as a down target's do.
	snap := e.c.Latest()
	if snap == nil || !e.c.Ready() {
		return nil, nil
	}
	// Identity labels are on every series, empty when unknown, so that
	// every series of a family has the same label names. Sorted.
	identity := []string{signals.LabelEngine, signals.LabelInstance, signals.LabelModel}
	families := map[string]*dto.MetricFamily{}
	for _, s := range snap.Samples {
		if !validUTF8(s.Labels) {
			continue
		}
		name := s.Labels.Get(model.MetricNameLabel)
		mf, ok := families[name]
		if !ok {
			help := e.help[name]
			if help == "" {
				help = "Signal " + name + " recorded by an engine profile."
			}
			mf = &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: dto.MetricType_GAUGE.Enum()}
			families[name] = mf
		}
		// The quantile label is reserved for summaries, so latency
		// signals are untyped, as Prometheus's /federate exposes
		// recorded series.
		if s.Labels.Has(signals.LabelQuantile) {
			mf.Type = dto.MetricType_UNTYPED.Enum()
		}
		mf.Metric = append(mf.Metric, metricOf(s.Labels, identity, s.Value))
	}
	for _, mf := range families {
		if mf.GetType() == dto.MetricType_UNTYPED {
			for _, m := range mf.Metric {
				m.Untyped, m.Gauge = &dto.Untyped{Value: m.Gauge.Value}, nil
			}
		}
	}
	return sortedFamilies(families), nil
}

// validUTF8 reports whether every label name and value of lset is valid
// UTF-8, as an exposition's must be.
func validUTF8(lset labels.Labels) bool {
	valid := true
	lset.Range(func(l labels.Label) {
		valid = valid && utf8.ValidString(l.Name) && utf8.ValidString(l.Value)
	})
	return valid
}

// metricOf returns lset as a gauge metric of value v: its labels but the
// metric name, and those of always (sorted) that lset lacks, empty, in
// name order, as a registry writes them. Its label pairs take three
// allocations rather than three per label.
func metricOf(lset labels.Labels, always []string, v float64) *dto.Metric {
	n := len(always)
	lset.Range(func(l labels.Label) {
		if l.Name != model.MetricNameLabel && !slices.Contains(always, l.Name) {
			n++
		}
	})
	pairs := make([]dto.LabelPair, 0, n)
	strs := make([]string, 0, 2*n)
	add := func(name, value string) {
		strs = append(strs, name, value)
		pairs = append(pairs, dto.LabelPair{Name: &strs[len(strs)-2], Value: &strs[len(strs)-1]})
	}
	k := 0
	lset.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		for ; k < len(always) && always[k] < l.Name; k++ {
			add(always[k], "")
		}
		if k < len(always) && always[k] == l.Name {
			k++
		}
		add(l.Name, l.Value)
	})
	for ; k < len(always); k++ {
		add(always[k], "")
	}
	m := &dto.Metric{Label: make([]*dto.LabelPair, len(pairs)), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	for i := range pairs {
		m.Label[i] = &pairs[i]
	}
	return m
}

// sortedFamilies returns families in name order, each one's metrics in
// the order a registry serves them: by their label values, pair by pair.
func sortedFamilies(families map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(families))
	for _, mf := range families {
		slices.SortFunc(mf.Metric, compareMetrics)
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// compareMetrics orders two metrics of a family as client_golang's
// registry does: by the number of labels, then by their values in order.
func compareMetrics(a, b *dto.Metric) int {
	if c := cmp.Compare(len(a.Label), len(b.Label)); c != 0 {
		return c
	}
	for i, l := range a.Label {
		if c := strings.Compare(l.GetValue(), b.Label[i].GetValue()); c != 0 {
			return c
		}
	}
	return 0
}

// SettingsExporter exports the latest snapshot's engine settings as
// perfagent_setting_info, and writes them to the store (Append). It is
// apart from SignalsExporter because the signals are in the local TSDB
// already, while the settings are written there by the cycle as the
// agent's own metrics.
type SettingsExporter struct {
	c *Collector

	mtx sync.Mutex
	// exported holds, by instance, the series of the last Gather or
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

// Gather implements prometheus.Gatherer, as SignalsExporter does and for
// the same reason.
func (e *SettingsExporter) Gather() ([]*dto.MetricFamily, error) {
	snap := e.c.Latest()
	if snap == nil || !e.c.Ready() {
		return nil, nil
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	mf := &dto.MetricFamily{Name: proto.String(settingInfoName), Help: proto.String(settingInfoHelp), Type: dto.MetricType_GAUGE.Enum()}
	for _, ex := range e.current(snap) {
		for _, s := range ex.settingSeries() {
			mf.Metric = append(mf.Metric, metricOf(s.lset, nil, 1))
		}
	}
	if len(mf.Metric) == 0 {
		return nil, nil
	}
	slices.SortFunc(mf.Metric, compareMetrics)
	return []*dto.MetricFamily{mf}, nil
}

// Append writes the settings of snap to app at its time, the series
// Gather exports, which is what a Prometheus scraping the agent would
// store. Nothing is written before a collection succeeds, as Gather
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

// settingInfoName is the name of the settings' info metric.
const settingInfoName = "perfagent_setting_info"

// settingInfoHelp is the help of the settings' info metric, one series
// per instance and setting the collector knows.
const settingInfoHelp = "Engine setting of a model server (value 1): its name in snake_case, its value and where it was read (metrics, probe, config)."
