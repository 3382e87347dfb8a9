package rules

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/optiinfra/perfagent/signalstore"
)

// templatedRules exercise every kind of label and annotation: templates
// reading $value, $labels and $externalURL, plain text (with a "$" that
// label_replace must not expand), two rules with the same name and
// expression that their plain labels tell apart, two that only a
// templated label tells apart, whose plain labels and annotations stay
// upstream, and two whose templates read the labels that the rules set,
// whose labels stay upstream.
const templatedRules = `groups:
  - name: templated
    rules:
      - alert: TestUnderused
        expr: avg_over_time(llm_requests_running[5m]) < 4
        for: 2m
        labels: {bottleneck: B6, category: utilization, severity: info, owner: '{{ $labels.model }}-team', cost: '$1 a $name', empty: ''}
        annotations:
          summary: '{{ $labels.instance }} runs {{ $value | printf "%.1f" }} requests.'
          description: 'Value {{ $value }} on {{ $labels.model }} ({{ $labels.engine }}), see {{ $externalURL }}.'
          runbook_url: https://example.com/runbook
          recommend: scale_in
          note: plain text
      - alert: TestTwin
        expr: avg_over_time(llm_requests_running[5m]) < 4
        for: 1m
        labels: {bottleneck: B6, category: utilization, severity: info, twin: a}
        annotations:
          summary: 'twin a {{ $labels.instance }}'
          description: twin a
          runbook_url: https://example.com/a
          recommend: scale_in
      - alert: TestTwin
        expr: avg_over_time(llm_requests_running[5m]) < 4
        for: 1m
        labels: {bottleneck: B6, category: utilization, severity: info, twin: b}
        annotations:
          summary: 'twin b {{ $labels.instance }}'
          description: twin b
          runbook_url: https://example.com/b
          recommend: scale_in
      - alert: TestReadsLabels
        expr: label_replace(avg_over_time(llm_requests_running[5m]) < 4, "severity", "from the series", "", "")
        labels: {bottleneck: B6, category: utilization, severity: info}
        annotations:
          summary: 'severity {{ $labels.severity }}'
          description: 'all {{ $labels }}'
          runbook_url: https://example.com/reads
          recommend: scale_in
      - alert: TestReadsAll
        expr: avg_over_time(llm_requests_running[5m]) < 4
        labels: {bottleneck: B6, category: utilization, severity: info}
        annotations:
          summary: '{{ range $k, $v := $labels }}{{ $k }} {{ end }}'
          description: reads all
          runbook_url: https://example.com/all
          recommend: scale_in
      - alert: TestSame
        expr: avg_over_time(llm_requests_running[5m]) < 4
        labels: {bottleneck: B6, category: utilization, severity: info, side: '{{ "left" }}'}
        annotations: {summary: left, description: left, runbook_url: https://example.com/left, recommend: scale_in}
      - alert: TestSame
        expr: avg_over_time(llm_requests_running[5m]) < 4
        labels: {bottleneck: B6, category: utilization, severity: info, side: '{{ "right" }}'}
        annotations: {summary: right, description: right, runbook_url: https://example.com/right, recommend: scale_in}
`

// underused is a server with a small batch and nothing waiting
// (LLMUnderutilized and the rules of templatedRules).
func underused(instance string, running float64) []point {
	return []point{
		{signal("llm_requests_running", instance, "vllm", "m"), running},
		{signal("llm_requests_waiting", instance, "vllm", "m"), 0},
		{signal("llm_kv_cache_usage_ratio", instance, "vllm", "m"), 0.1},
	}
}

// referenceGroups builds groups as upstream would from files: every
// annotation on the upstream rule, expanded at each evaluation.
func referenceGroups(t testing.TB, files []*RuleFile, interval time.Duration, opts *promrules.ManagerOptions, extURL string) []*promrules.Group {
	t.Helper()
	var out []*promrules.Group
	for _, f := range files {
		for _, g := range f.Groups {
			var rs []promrules.Rule
			for _, r := range g.Rules {
				expr, err := opts.Parser.ParseExpr(r.Expr)
				if err != nil {
					t.Fatal(err)
				}
				lset := promrules.FromMaps(g.Labels, r.Labels)
				if r.Alert == "" {
					rs = append(rs, promrules.NewRecordingRule(r.Record, expr, lset))
					continue
				}
				rs = append(rs, promrules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
					lset, labels.FromMap(r.Annotations), labels.EmptyLabels(), extURL, true, opts.Logger))
			}
			out = append(out, promrules.NewGroup(promrules.GroupOptions{Name: g.Name, File: f.Name, Interval: interval, Rules: rs, Opts: opts}))
		}
	}
	return out
}

// alertLines lists the active alerts of groups with all their
// annotations, one line each, sorted.
func alertLines(groups []*promrules.Group, annotations func(*promrules.AlertingRule, *promrules.Alert) labels.Labels) []string {
	var out []string
	for _, g := range groups {
		for _, ar := range g.AlertingRules() {
			for _, a := range ar.ActiveAlerts() {
				out = append(out, fmt.Sprintf("%s %s %v %s", a.State, a.Labels, a.Value, annotations(ar, a)))
			}
		}
	}
	sort.Strings(out)
	return out
}

// sentAlerts records what a NotifyFunc of either path receives.
type sentAlerts struct {
	mtx   sync.Mutex
	lines []string
}

func (s *sentAlerts) add(labels, annotations labels.Labels, endsAt time.Time) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	s.lines = append(s.lines, fmt.Sprintf("%s %s %s", labels, annotations, endsAt.Format(time.RFC3339)))
}

func (s *sentAlerts) take() []string {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	out := s.lines
	s.lines = nil
	sort.Strings(out)
	return out
}

// TestPlainAnnotationsUnchanged evaluates the built-in rules and
// templatedRules both as the manager does, with plain labels and
// annotations kept out of the upstream rules, and as upstream does, and
// checks that the alerts, their labels and annotations, the rules as
// listed and the notifications are the same.
func TestPlainAnnotationsUnchanged(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	extURL, _ := url.Parse("http://agent.example:8002/")
	var gotSent, wantSent sentAlerts
	files := append(BuiltinFiles(), tempRuleFile(t, templatedRules))
	m := NewManager(onStore(store, ManagerOptions{
		ExternalURL: extURL, EvaluationInterval: time.Minute, ResendDelay: time.Minute,
		NotifyFunc: func(_ context.Context, alerts ...*notifier.Alert) {
			for _, a := range alerts {
				gotSent.add(a.Labels, a.Annotations, a.EndsAt)
			}
		},
	}))
	if err := m.Update(files); err != nil {
		t.Fatal(err)
	}
	loaded, errs := NewLoader(LoaderOptions{}).Load(files)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	opts := *m.promOpts
	opts.AppendableV2 = discardAppendable{}
	opts.NotifyFunc = func(_ context.Context, _ string, alerts ...*promrules.Alert) {
		for _, a := range alerts {
			end := a.ValidUntil
			if !a.ResolvedAt.IsZero() {
				end = a.ResolvedAt
			}
			wantSent.add(a.Labels, a.Annotations, end)
		}
	}
	opts.Metrics = promrules.NewGroupMetrics(nil)
	ref := referenceGroups(t, loaded, time.Minute, &opts, m.extURL)

	for i := range 8 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		running := 1.5 + float64(i)/4
		if i >= 6 {
			running = 10 // resolves the alerts
		}
		var points []point
		for j := range 3 {
			points = append(points, underused(fmt.Sprintf("s%d:8000", j), running+float64(j))...)
		}
		appendAt(t, store, ts, points...)
		m.Eval(ctx, ts)
		for _, g := range ref {
			g.Eval(ctx, ts)
		}
		got := alertLines(m.RuleGroups(), func(ar *promrules.AlertingRule, a *promrules.Alert) labels.Labels {
			return m.pubStatic.merge(ruleKey(ar.Name(), ar.Query().String()), a.Annotations)
		})
		want := alertLines(ref, func(_ *promrules.AlertingRule, a *promrules.Alert) labels.Labels { return a.Annotations })
		if i < 6 && len(want) == 0 {
			t.Fatalf("minute %d: no alert to compare", i)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("minute %d: alerts\n got  %s\n want %s", i, strings.Join(got, "\n      "), strings.Join(want, "\n      "))
		}
		if g, w := gotSent.take(), wantSent.take(); !slices.Equal(g, w) {
			t.Fatalf("minute %d: sent\n got  %s\n want %s", i, strings.Join(g, "\n      "), strings.Join(w, "\n      "))
		}
		for _, b := range m.Bottlenecks() {
			if strings.Contains(b.Summary+b.Description+b.RunbookURL, "{{") || b.RunbookURL == "" || len(b.Recommendations) == 0 {
				t.Fatalf("minute %d: bottleneck not expanded: %+v", i, b)
			}
		}
	}
	// The comparison above covers both paths: plain labels left the
	// upstream rules, except where only a templated label tells two
	// rules apart.
	upstreamLabels := map[string][]string{}
	for _, g := range m.RuleGroups() {
		for _, ar := range g.AlertingRules() {
			upstreamLabels[ar.Name()] = append(upstreamLabels[ar.Name()], ar.Labels().String())
		}
	}
	for name, got := range upstreamLabels {
		if strings.HasPrefix(name, "LLM") && !slices.Equal(got, []string{"{}"}) {
			t.Errorf("upstream labels of the built-in %s = %v, want none", name, got)
		}
	}
	if got := upstreamLabels["TestUnderused"]; !slices.Equal(got, []string{`{owner="{{ $labels.model }}-team"}`}) {
		t.Errorf("upstream labels of TestUnderused = %v, want only the templated one", got)
	}
	for _, name := range []string{"TestSame", "TestReadsLabels", "TestReadsAll"} {
		if got := upstreamLabels[name]; len(got) == 0 || !strings.Contains(got[0], "severity") {
			t.Errorf("upstream labels of %s = %v, want all of them", name, got)
		}
	}
	var gotRules, wantRules []string
	for _, g := range m.RuleGroups() {
		for _, ar := range g.AlertingRules() {
			expr, lset := m.Rule(ar)
			gotRules = append(gotRules, ar.Name()+" "+expr+" "+lset.String()+" "+m.Annotations(ar).String())
		}
	}
	for _, g := range ref {
		for _, ar := range g.AlertingRules() {
			wantRules = append(wantRules, ar.Name()+" "+ar.Query().String()+" "+ar.Labels().String()+" "+ar.Annotations().String())
		}
	}
	sort.Strings(gotRules)
	sort.Strings(wantRules)
	if !slices.Equal(gotRules, wantRules) {
		t.Fatalf("rule annotations\n got  %s\n want %s", strings.Join(gotRules, "\n      "), strings.Join(wantRules, "\n      "))
	}
}

// TestPlainAnnotationChangeReloads checks that a rule whose only change
// is a plain annotation is replaced, as upstream replaces it.
func TestPlainAnnotationChangeReloads(t *testing.T) {
	store := openStore(t, t.TempDir())
	m := NewManager(onStore(store, ManagerOptions{}))
	path := tempRuleFile(t, templatedRules)
	if err := m.Update([]string{path}); err != nil {
		t.Fatal(err)
	}
	before := m.RuleGroups()[0]
	writeFile(t, path, strings.Replace(templatedRules, "note: plain text", "note: other text", 1))
	if err := m.Update([]string{path}); err != nil {
		t.Fatal(err)
	}
	after := m.RuleGroups()[0]
	if after == before {
		t.Fatal("group kept after a plain annotation changed")
	}
	for _, ar := range after.AlertingRules() {
		if ar.Name() != "TestUnderused" {
			continue
		}
		if got := m.Annotations(ar).Get("note"); got != "other text" {
			t.Fatalf("note = %q after the change", got)
		}
		return
	}
	t.Fatal("TestUnderused not loaded")
}

// BenchmarkAlertEval evaluates the built-in rules over n under-used
// servers, each with a pending LLMUnderutilized alert, as the manager does
// (manager) and as upstream does with every annotation a template
// (upstream).
func BenchmarkAlertEval(b *testing.B) {
	for _, n := range []int{100, 1000} {
		store := openBenchStore(b, n)
		m := NewManager(onStore(store, ManagerOptions{EvaluationInterval: 15 * time.Second}))
		if err := m.Update(BuiltinFiles()); err != nil {
			b.Fatal(err)
		}
		loaded, _ := NewLoader(LoaderOptions{}).Load(BuiltinFiles())
		opts := *m.promOpts
		opts.AppendableV2 = discardAppendable{}
		opts.Metrics = promrules.NewGroupMetrics(nil)
		ref := referenceGroups(b, loaded, 15*time.Second, &opts, m.extURL)
		groups, static, err := buildGroups(loaded, 15*time.Second, &opts, true, labels.EmptyLabels(), "", m.logger)
		if err != nil {
			b.Fatal(err)
		}
		paths := []struct {
			name   string
			groups []*promrules.Group
			read   func(ar *promrules.AlertingRule, a *promrules.Alert) string
		}{
			{"upstream", ref, func(_ *promrules.AlertingRule, a *promrules.Alert) string {
				return a.Annotations.Get(AnnotationSummary) + a.Annotations.Get(AnnotationRunbookURL)
			}},
			{"manager", groups, func(ar *promrules.AlertingRule, a *promrules.Alert) string {
				key := ruleKey(ar.Name(), ar.Query().String())
				return static.get(key, a.Annotations, AnnotationSummary) + static.get(key, a.Annotations, AnnotationRunbookURL)
			}},
		}
		for _, p := range paths {
			b.Run(fmt.Sprintf("path=%s/servers=%d", p.name, n), func(b *testing.B) {
				ctx := context.Background()
				ts := t0.Add(30 * time.Minute)
				alerts := 0
				b.ReportAllocs()
				for b.Loop() {
					alerts = 0
					for _, g := range p.groups {
						g.Eval(ctx, ts)
						for _, ar := range g.AlertingRules() {
							for _, a := range ar.ActiveAlerts() {
								if p.read(ar, a) != "" {
									alerts++
								}
							}
						}
					}
				}
				if alerts < n {
					b.Fatalf("%d alerts, want at least %d", alerts, n)
				}
				b.ReportMetric(float64(alerts), "alerts")
			})
		}
	}
}

// openBenchStore returns a store with 30 minutes of n under-used servers.
func openBenchStore(b *testing.B, n int) *signalstore.Store {
	b.Helper()
	store := openStore(b, b.TempDir())
	for ts := t0; !ts.After(t0.Add(30 * time.Minute)); ts = ts.Add(time.Minute) {
		var points []point
		for j := range n {
			points = append(points, underused(fmt.Sprintf("s%d:8000", j), 2)...)
		}
		appendAt(b, store, ts, points...)
	}
	return store
}

// BenchmarkBottlenecks builds the bottlenecks of n under-used servers of
// one model, each with a pending LLMUnderutilized alert, from rules
// already evaluated: the summaries and the evidence of every alert, whose
// queries answer for all n servers at once.
func BenchmarkBottlenecks(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			store := openBenchStore(b, n)
			m := NewManager(onStore(store, ManagerOptions{EvaluationInterval: 15 * time.Second}))
			if err := m.Update(BuiltinFiles()); err != nil {
				b.Fatal(err)
			}
			ctx, ts := context.Background(), t0.Add(30*time.Minute)
			for _, g := range m.groups {
				g.Eval(ctx, ts)
			}
			var bs []Bottleneck
			for b.Loop() {
				bs = m.collect(ctx, ts, m.groups, m.static, m.evidence)
			}
			if len(bs) < n || len(bs[0].Evidence) == 0 {
				b.Fatalf("%d bottlenecks, want %d with evidence", len(bs), n)
			}
			b.ReportMetric(float64(len(bs)), "bottlenecks")
		})
	}
}
