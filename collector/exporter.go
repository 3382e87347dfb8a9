package collector

import (
	"bytes"
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
	return gatherFamilies(e.families()), nil
}

// TextFamilies returns the families Gather would, to be written in the
// text format without building them as client_model structures
// (textFamily); see web.TextFamilies.
func (e *SignalsExporter) TextFamilies() ([]string, func([]byte, int) []byte, bool) {
	return textFamilies(e.families())
}

// families returns the latest snapshot's signals as families, in name
// order.
func (e *SignalsExporter) families() []*textFamily {
	// While the source fails, export nothing rather than old values: the
	// series go stale in Prometheus, as a down target's do.
	snap := e.c.Latest()
	if snap == nil || !e.c.Ready() {
		return nil
	}
	// Identity labels are on every series, empty when unknown, so that
	// every series of a family has the same label names. Sorted.
	identity := []string{signals.LabelEngine, signals.LabelInstance, signals.LabelModel}
	byName := map[string]*textFamily{}
	for _, s := range snap.Samples {
		if !validUTF8(s.Labels) {
			continue
		}
		name := s.Labels.Get(model.MetricNameLabel)
		f, ok := byName[name]
		if !ok {
			help := e.help[name]
			if help == "" {
				help = "Signal " + name + " recorded by an engine profile."
			}
			f = &textFamily{name: name, help: help, always: identity}
			byName[name] = f
		}
		// The quantile label is reserved for summaries, so latency
		// signals are untyped, as Prometheus's /federate exposes
		// recorded series.
		if s.Labels.Has(signals.LabelQuantile) {
			f.untyped = true
		}
		f.series = append(f.series, textSeries{lset: s.Labels, value: s.Value})
	}
	return sortedFamilies(slices.Collect(maps.Values(byName)))
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
	n := 0
	writtenLabels(lset, always, func(string, string) { n++ })
	pairs := make([]dto.LabelPair, 0, n)
	strs := make([]string, 0, 2*n)
	writtenLabels(lset, always, func(name, value string) {
		strs = append(strs, name, value)
		pairs = append(pairs, dto.LabelPair{Name: &strs[len(strs)-2], Value: &strs[len(strs)-1]})
	})
	m := &dto.Metric{Label: make([]*dto.LabelPair, len(pairs)), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	for i := range pairs {
		m.Label[i] = &pairs[i]
	}
	return m
}

// sortedFamilies puts families in name order, each one's series in the
// order a registry serves them.
func sortedFamilies(families []*textFamily) []*textFamily {
	slices.SortFunc(families, func(a, b *textFamily) int { return strings.Compare(a.name, b.name) })
	for _, f := range families {
		f.sortSeries()
	}
	return families
}

// gatherFamilies returns families as client_model's metric families.
func gatherFamilies(families []*textFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, len(families))
	for i, f := range families {
		mf := &dto.MetricFamily{Name: proto.String(f.name), Help: proto.String(f.help), Type: dto.MetricType_GAUGE.Enum(), Metric: make([]*dto.Metric, len(f.series))}
		for j, s := range f.series {
			mf.Metric[j] = metricOf(s.lset, f.always, s.value)
			if f.untyped {
				mf.Metric[j].Untyped, mf.Metric[j].Gauge = &dto.Untyped{Value: mf.Metric[j].Gauge.Value}, nil
			}
		}
		if f.untyped {
			mf.Type = dto.MetricType_UNTYPED.Enum()
		}
		out[i] = mf
	}
	return out
}

// textFamilies returns the names of families and a function that appends
// the i-th in the text format, or false when a name of theirs is one an
// escaping scheme could change or expfmt would quote.
func textFamilies(families []*textFamily) ([]string, func([]byte, int) []byte, bool) {
	names := make([]string, len(families))
	for i, f := range families {
		for _, s := range f.series {
			if !legacyNames(s.lset) {
				return nil, nil, false
			}
		}
		names[i] = f.name
	}
	return names, func(b []byte, i int) []byte { return families[i].appendText(b) }, true
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
	// text is the family in the text format as TextFamilies last wrote
	// it, of the instances' settings in textOf: written again only when
	// one of them changes, rather than sorted and formatted at every
	// cycle.
	text   []byte
	textOf []*exportedSettings
	textOK bool
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
	return gatherFamilies(e.families()), nil
}

// TextFamilies is SignalsExporter.TextFamilies for the settings.
func (e *SettingsExporter) TextFamilies() ([]string, func([]byte, int) []byte, bool) {
	snap := e.c.Latest()
	if snap == nil || !e.c.Ready() {
		return nil, nil, true
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	current := e.current(snap)
	if e.textOf == nil || !slices.Equal(current, e.textOf) {
		e.text, e.textOK = nil, true
		if f := settingsFamily(current); f != nil {
			var appendFamily func([]byte, int) []byte
			_, appendFamily, e.textOK = textFamilies([]*textFamily{f})
			if e.textOK {
				// Kept until the settings change: without the spare
				// capacity of the slice it grew in.
				e.text = bytes.Clone(appendFamily(nil, 0))
			}
		}
		e.textOf = current
	}
	if e.text == nil {
		return nil, nil, e.textOK
	}
	text := e.text
	return []string{settingInfoName}, func(b []byte, _ int) []byte { return append(b, text...) }, true
}

// families returns the latest snapshot's settings as one family, or none.
func (e *SettingsExporter) families() []*textFamily {
	snap := e.c.Latest()
	if snap == nil || !e.c.Ready() {
		return nil
	}
	e.mtx.Lock()
	defer e.mtx.Unlock()
	if f := settingsFamily(e.current(snap)); f != nil {
		return []*textFamily{f}
	}
	return nil
}

// settingsFamily returns the settings of current as one family, its
// series sorted, or nil when there are none.
func settingsFamily(current []*exportedSettings) *textFamily {
	f := &textFamily{name: settingInfoName, help: settingInfoHelp}
	for _, ex := range current {
		for _, s := range ex.settingSeries() {
			f.series = append(f.series, textSeries{lset: s.lset, value: 1})
		}
	}
	if len(f.series) == 0 {
		return nil
	}
	f.sortSeries()
	return f
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
