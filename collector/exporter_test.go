package collector

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

func TestSignalsExporterPassesLint(t *testing.T) {
	store := openTestStore(t)
	scrapeText(t, store, "a:1", t0, fakeExposition(3, 0))
	prof := mustProfile(t, "fake.yml", fakeProfile+`      - record: llm_time_to_first_token_seconds
        expr: sum by (instance, model) (label_replace(fake_running, "model", "$1", "model_name", "(.*)")) / 10
        labels: {engine: fake, quantile: "0.95"}
`)
	cfg := config.Default()
	cfg.Instances = []config.InstanceConfig{{Instance: "a:1", Settings: map[string]string{"max_num_seqs": "128"}}}
	c := newTestCollector(t, store, cfg, prof)
	e := NewSignalsExporter(c)
	if mfs, err := e.Gather(); err != nil || len(mfs) != 0 {
		t.Errorf("exported %d families (err %v) before the first cycle, want none", len(mfs), err)
	}
	if _, err := c.Cycle(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := e.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]dto.MetricType{}
	for _, mf := range mfs {
		types[mf.GetName()] = mf.GetType()
	}
	if types["llm_time_to_first_token_seconds"] != dto.MetricType_UNTYPED || types["llm_requests_running"] != dto.MetricType_GAUGE {
		t.Errorf("types = %v, want latency untyped and the rest gauges", types)
	}
}

// TestSignalsExporterServesWhatARegistryWould: the families the exporter
// builds are, encoded, the page a pedantic registry serves for the same
// series as const metrics, in every format a scraper may ask for. The
// series cover identity labels missing, labels sorting before, between and
// after them, a quantile family, unsorted input, and a label value that is
// not valid UTF-8, which is left out.
func TestSignalsExporterServesWhatARegistryWould(t *testing.T) {
	valid := []signals.Sample{
		{Labels: labels.FromStrings("__name__", "llm_requests_running", "instance", "b:1", "engine", "vllm", "model", "m"), Value: 3},
		{Labels: labels.FromStrings("__name__", "llm_requests_running", "instance", "a:1", "engine", "vllm", "model", "m"), Value: 2},
		{Labels: labels.FromStrings("__name__", "llm_requests_running", "instance", "c:1"), Value: 1},
		{Labels: labels.FromStrings("__name__", "llm_time_to_first_token_seconds", "instance", "a:1", "engine", "vllm", "model", "m", "quantile", "0.5"), Value: 0.2},
		{Labels: labels.FromStrings("__name__", "llm_time_to_first_token_seconds", "instance", "a:1", "engine", "vllm", "model", "m", "quantile", "0.99"), Value: 0.9},
		{Labels: labels.FromStrings("__name__", "custom_signal", "a_first", "x", "instance", "a:1", "le", "10", "zz_last", "y"), Value: 7},
		{Labels: labels.FromStrings("__name__", "custom_signal", "a_first", `a "quoted" \ value`+"\non two lines", "instance", "b:1"), Value: math.NaN()},
		{Labels: labels.FromStrings("__name__", "custom_signal", "a_first", "ünïcode", "instance", "c:1"), Value: math.Inf(-1)},
		{Labels: labels.FromStrings("__name__", "llm_queue_length", "instance", "a:1"), Value: -1},
		{Labels: labels.FromStrings("__name__", "llm_queue_length", "instance", "b:1"), Value: 0},
		{Labels: labels.FromStrings("__name__", "llm_queue_length", "instance", "c:1"), Value: 1e21},
		{Labels: labels.FromStrings("__name__", "llm_queue_length", "instance", "d:1"), Value: 1.5e-7},
		{Labels: labels.FromStrings("__name__", "llm_queue_length", "instance", "e:1"), Value: math.Inf(1)},
		{Labels: labels.FromStrings("__name__", "llm_queue_length", "instance", "f:1"), Value: 123456789},
	}
	invalid := signals.Sample{Labels: labels.FromStrings("__name__", "llm_requests_running", "instance", "d:1", "model", "bad\xff"), Value: 4}
	c := &Collector{latest: &Snapshot{Samples: append(slices.Clone(valid), invalid)}, ready: true}
	e := NewSignalsExporter(c)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(constSignals{e: e, samples: valid})
	for _, format := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeOpenMetrics), expfmt.NewFormat(expfmt.TypeProtoDelim)} {
		got, want := encodeGathered(t, e, format), encodeGathered(t, reg, format)
		if got != want {
			t.Errorf("%s: the exporter serves\n%s\na registry serves\n%s", format, got, want)
		}
	}
	if got, want := appendTextFamilies(t, e), encodeGathered(t, reg, expfmt.NewFormat(expfmt.TypeTextPlain)); got != want {
		t.Errorf("the exporter writes\n%s\na registry serves\n%s", got, want)
	}
	// A label name that an escaping scheme would change is left to
	// client_golang's encoder.
	c.latest.Samples = append(c.latest.Samples, signals.Sample{Labels: labels.FromStrings("__name__", "custom_signal", "instance", "a:1", "gpu.id", "0"), Value: 1})
	if _, _, ok := e.TextFamilies(); ok {
		t.Error("TextFamilies writes the label gpu.id itself")
	}
}

// appendTextFamilies returns the families tf writes as text, one after
// the other.
func appendTextFamilies(t *testing.T, tf interface {
	TextFamilies() ([]string, func([]byte, int) []byte, bool)
}) string {
	t.Helper()
	names, appendFamily, ok := tf.TextFamilies()
	if !ok {
		t.Fatal("TextFamilies declines")
	}
	var page []byte
	for i, name := range names {
		if i > 0 && names[i-1] >= name {
			t.Errorf("family %s after %s", name, names[i-1])
		}
		page = appendFamily(page, i)
	}
	return string(page)
}

// encodeGathered returns what g gathers, encoded in format.
func encodeGathered(t testing.TB, g prometheus.Gatherer, format expfmt.Format) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	enc := expfmt.NewEncoder(&buf, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// constSignals exports samples as const metrics through a registry, as
// the signals were before SignalsExporter built its families itself: the
// reference its families are compared with, and measured against.
type constSignals struct {
	e       *SignalsExporter
	samples []signals.Sample
}

func (constSignals) Describe(chan<- *prometheus.Desc) {}

func (c constSignals) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.samples {
		name := s.Labels.Get(model.MetricNameLabel)
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
		help := c.e.help[name]
		if help == "" {
			help = "Signal " + name + " recorded by an engine profile."
		}
		typ := prometheus.GaugeValue
		if s.Labels.Has(signals.LabelQuantile) {
			typ = prometheus.UntypedValue
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, names, nil), typ, s.Value, values...)
	}
}

func TestSettingsExporter(t *testing.T) {
	store := openTestStore(t)
	scrapeText(t, store, "a:1", t0, fakeExposition(3, 0))
	cfg := config.Default()
	cfg.Instances = []config.InstanceConfig{{Instance: "a:1", Settings: map[string]string{"max_num_seqs": "128"}}}
	c := newTestCollector(t, store, cfg, mustProfile(t, "fake.yml", fakeProfile))
	if _, err := c.Cycle(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	want := `# HELP perfagent_setting_info Engine setting of a model server (value 1): its name in snake_case, its value and where it was read (metrics, probe, config).
# TYPE perfagent_setting_info gauge
perfagent_setting_info{engine="fake",instance="a:1",model="m1",setting="max_num_seqs",source="config",value="128"} 1
`
	e := NewSettingsExporter(c)
	if err := testutil.GatherAndCompare(e, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if got := appendTextFamilies(t, e); got != want {
		t.Errorf("the exporter writes\n%s\nwant\n%s", got, want)
	}
	appendSettings(t, store, e, c.Latest())
	// The exporter keeps what it exported: a changed setting and a new
	// one must still show at the next gathering, and nothing else.
	cfg.Instances[0].Settings = map[string]string{"max_num_seqs": "256", "block_size": "32"}
	if err := c.ApplyConfig(cfg, store, []*Profile{mustProfile(t, "fake.yml", fakeProfile)}); err != nil {
		t.Fatal(err)
	}
	scrapeText(t, store, "a:1", t0.Add(15*time.Second), fakeExposition(3, 0))
	if _, err := c.Cycle(context.Background(), t0.Add(15*time.Second)); err != nil {
		t.Fatal(err)
	}
	want = strings.Replace(want, `setting="max_num_seqs",source="config",value="128"`, `setting="max_num_seqs",source="config",value="256"`, 1) +
		`perfagent_setting_info{engine="fake",instance="a:1",model="m1",setting="block_size",source="config",value="32"} 1
`
	if err := testutil.GatherAndCompare(e, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if got, gathered := appendTextFamilies(t, e), encodeGathered(t, e, expfmt.NewFormat(expfmt.TypeTextPlain)); got != gathered {
		t.Errorf("the exporter writes\n%s\nand gathers\n%s", got, gathered)
	}
	appendSettings(t, store, e, c.Latest())

	// An instance that is gone has its settings' series marked stale.
	gone := &Snapshot{Time: t0.Add(30 * time.Second)}
	app := store.Appender(context.Background())
	if err := e.Append(app, gone); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, err := store.Query(context.Background(), "perfagent_setting_info", gone.Time); err != nil || len(v) != 0 {
		t.Errorf("after the instance left: %v, %v; want no series", v, err)
	}
}

// appendSettings appends snap's settings with e and checks that the store
// then holds, at snap's time, the series e exports.
func appendSettings(t *testing.T, store *signalstore.Store, e *SettingsExporter, snap *Snapshot) {
	t.Helper()
	ctx := context.Background()
	app := store.Appender(ctx)
	if err := e.Append(app, snap); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	mfs, err := e.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			ls := labels.NewScratchBuilder(len(m.GetLabel()) + 1)
			ls.Add(model.MetricNameLabel, mf.GetName())
			for _, l := range m.GetLabel() {
				ls.Add(l.GetName(), l.GetValue())
			}
			ls.Sort()
			exported = append(exported, ls.Labels().String())
		}
	}
	// An earlier value's series, within the lookback, must have been
	// marked stale.
	v, err := store.Query(ctx, `perfagent_setting_info`, snap.Time)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, s := range v {
		if s.F != 1 {
			t.Errorf("%s = %g, want 1", s.Metric, s.F)
		}
		stored = append(stored, s.Metric.String())
	}
	slices.Sort(exported)
	slices.Sort(stored)
	if len(exported) == 0 || !slices.Equal(stored, exported) {
		t.Errorf("stored at %s:\n%s\nexported:\n%s", snap.Time, strings.Join(stored, "\n"), strings.Join(exported, "\n"))
	}
}

func TestSettingMetricsLeaveOutInvalidUTF8(t *testing.T) {
	ex := &exportedSettings{instance: "a:1", engine: "vllm", model: "m1", settings: Settings{
		"block_size":      {Value: "16", Source: "metrics"},
		"served_model":    {Value: "bad\xff", Source: "metrics"},
		"max_num_seqs":    {Value: "256", Source: "probe"},
		"tokenizer\xfe":   {Value: "x", Source: "probe"},
		"kv_cache_dtype":  {Value: "auto", Source: "bad\xfd"},
		"max_model_len":   {Value: "8192", Source: "config"},
		"enable_chunking": {Value: "", Source: "config"},
	}}
	c := &Collector{latest: &Snapshot{Instances: []*Instance{{Instance: ex.instance, Engine: ex.engine, Model: ex.model, Settings: ex.settings}}}, ready: true}
	e := NewSettingsExporter(c)
	want := `# HELP perfagent_setting_info Engine setting of a model server (value 1): its name in snake_case, its value and where it was read (metrics, probe, config).
# TYPE perfagent_setting_info gauge
perfagent_setting_info{engine="vllm",instance="a:1",model="m1",setting="block_size",source="metrics",value="16"} 1
perfagent_setting_info{engine="vllm",instance="a:1",model="m1",setting="enable_chunking",source="config",value=""} 1
perfagent_setting_info{engine="vllm",instance="a:1",model="m1",setting="max_model_len",source="config",value="8192"} 1
perfagent_setting_info{engine="vllm",instance="a:1",model="m1",setting="max_num_seqs",source="probe",value="256"} 1
`
	if err := testutil.GatherAndCompare(e, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// BenchmarkSignalsPage gathers and encodes a collection's signals over
// 1000 instances, as /metrics does once a cycle: through a registry, as
// const metrics (the baseline), as the exporter builds them, and as it
// writes them in the text format itself (TextFamilies).
func BenchmarkSignalsPage(b *testing.B) {
	src, profs := nativeFleet(b, 1000)
	c := New(Options{Metrics: testMetrics()})
	if err := c.ApplyConfig(config.Default(), src, profs); err != nil {
		b.Fatal(err)
	}
	snap, err := c.Collect(context.Background(), t0.Add(45*time.Second), CollectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	e := NewSignalsExporter(&Collector{latest: snap, ready: true})
	reg := prometheus.NewRegistry()
	reg.MustRegister(constSignals{e: e, samples: snap.Samples})
	text := expfmt.NewFormat(expfmt.TypeTextPlain)
	written := func(b *testing.B) string {
		names, appendFamily, ok := e.TextFamilies()
		if !ok {
			b.Fatal("TextFamilies declines")
		}
		var page []byte
		for i := range names {
			page = appendFamily(page, i)
		}
		return string(page)
	}
	for _, tc := range []struct {
		name string
		page func(b *testing.B) string
	}{
		{"families=registry", func(b *testing.B) string { return encodeGathered(b, reg, text) }},
		{"families=built", func(b *testing.B) string { return encodeGathered(b, e, text) }},
		{"families=text", written},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var page string
			for b.Loop() {
				page = tc.page(b)
			}
			b.ReportMetric(float64(len(snap.Samples)), "series")
			b.ReportMetric(float64(len(page)), "page-bytes")
		})
	}
}

// TestSettingsTextIsWrittenAgainOnlyOnChange checks that the settings'
// family in the text format is kept while no instance's settings change,
// and written again, from the new settings, when one does.
func TestSettingsTextIsWrittenAgainOnlyOnChange(t *testing.T) {
	instance := func(name, seqs string) *Instance {
		return &Instance{Instance: name, Engine: "vllm", Model: "m1", Settings: Settings{"max_num_seqs": {Value: seqs, Source: "probe"}}}
	}
	c := &Collector{latest: &Snapshot{Instances: []*Instance{instance("b:1", "256"), instance("a:1", "128")}}, ready: true}
	e := NewSettingsExporter(c)
	first := appendTextFamilies(t, e)
	if !strings.Contains(first, `instance="a:1",model="m1",setting="max_num_seqs",source="probe",value="128"} 1
perfagent_setting_info{engine="vllm",instance="b:1"`) {
		t.Fatalf("the first page, in instance order:\n%s", first)
	}
	kept := &e.text[0]
	// The next cycle's snapshot: new instances, the same settings.
	c.latest = &Snapshot{Instances: []*Instance{instance("b:1", "256"), instance("a:1", "128")}}
	if got := appendTextFamilies(t, e); got != first || &e.text[0] != kept {
		t.Errorf("unchanged settings were written again:\n%s", got)
	}
	c.latest = &Snapshot{Instances: []*Instance{instance("b:1", "512"), instance("a:1", "128")}}
	want := strings.Replace(first, `value="256"`, `value="512"`, 1)
	if got := appendTextFamilies(t, e); got != want {
		t.Errorf("after b:1's change:\n%s\nwant\n%s", got, want)
	}
	c.latest = &Snapshot{Instances: []*Instance{instance("a:1", "128")}}
	if got := appendTextFamilies(t, e); strings.Contains(got, "b:1") {
		t.Errorf("after b:1 left:\n%s", got)
	}
}
