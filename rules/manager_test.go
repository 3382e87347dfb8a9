package rules

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

// kvPressure is a vLLM server whose KV cache is full and preempting
// (LLMKVCachePressure), or, with preempting false, full but calm.
func kvPressure(instance string, preempting bool) []point {
	p := 0.0
	if preempting {
		p = 0.5
	}
	return []point{
		{signal("llm_kv_cache_usage_ratio", instance, "vllm", "m"), 0.95},
		{signal("llm_preemptions_per_second", instance, "vllm", "m"), p},
		{signal("llm_requests_waiting", instance, "vllm", "m"), 0},
	}
}

// notifications records what a NotifyFunc receives.
type notifications struct {
	mtx    sync.Mutex
	alerts []*notifier.Alert
}

func (n *notifications) notify(_ context.Context, alerts ...*notifier.Alert) {
	n.mtx.Lock()
	defer n.mtx.Unlock()
	n.alerts = append(n.alerts, alerts...)
}

func (n *notifications) take() []*notifier.Alert {
	n.mtx.Lock()
	defer n.mtx.Unlock()
	out := n.alerts
	n.alerts = nil
	return out
}

func TestManagerBottleneckLifecycle(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	reg := prometheus.NewRegistry()
	var sent notifications
	m := NewManager(onStore(store, ManagerOptions{Metrics: NewMetrics(reg), NotifyFunc: sent.notify, EvaluationInterval: time.Minute}))
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	step := func(i int, preempting bool) []Bottleneck {
		ts := t0.Add(time.Duration(i) * time.Minute)
		appendAt(t, store, ts, kvPressure("a:8000", preempting)...)
		m.Eval(ctx, ts)
		return m.Bottlenecks()
	}
	for i := range 5 {
		bs := step(i, true)
		if len(bs) != 1 || bs[0].State != StatePending {
			t.Fatalf("minute %d: want one pending bottleneck, got %+v", i, bs)
		}
	}
	if got := sent.take(); len(got) != 0 {
		t.Fatalf("pending alerts were sent: %v", got)
	}

	bs := step(5, true)
	if len(bs) != 1 {
		t.Fatalf("minute 5: want one bottleneck, got %+v", bs)
	}
	b := bs[0]
	want := Bottleneck{
		Rule: "LLMKVCachePressure", ID: "B1", Category: CategoryMemory, Severity: SeverityWarning, State: StateFiring,
		Instance: "a:8000", Engine: "vllm", Model: "m",
		ActiveAt: t0, FiredAt: t0.Add(5 * time.Minute), Value: 0.95,
		Summary:         "KV cache of a:8000 runs out (usage peaks at 95%) and requests are preempted.",
		RunbookURL:      "https://github.com/optiinfra/perfagent/blob/main/docs/rules.md#llmkvcachepressure",
		Recommendations: []string{"raise_gpu_memory_utilization", "raise_mem_fraction_static", "fp8_kv_cache", "lower_max_num_seqs", "raise_schedule_conservativeness", "fp8_weights", "int4_awq_weights", "scale_out"},
	}
	if b.Rule != want.Rule || b.ID != want.ID || b.Category != want.Category || b.Severity != want.Severity || b.State != want.State ||
		b.Instance != want.Instance || b.Engine != want.Engine || b.Model != want.Model ||
		!b.ActiveAt.Equal(want.ActiveAt) || !b.FiredAt.Equal(want.FiredAt) || b.Value != want.Value ||
		b.Summary != want.Summary || b.RunbookURL != want.RunbookURL || !slices.Equal(b.Recommendations, want.Recommendations) {
		t.Errorf("bottleneck:\n got  %+v\n want %+v", b, want)
	}
	if !strings.HasPrefix(b.Description, "Running requests on a:8000 (vllm, model m) are preempted") {
		t.Errorf("description not rendered: %q", b.Description)
	}
	var evidence []string
	for _, s := range b.Evidence {
		evidence = append(evidence, s.Labels.String()+" "+strconv.FormatFloat(s.Value, 'g', -1, 64))
	}
	wantEvidence := []string{
		`{__name__="llm_kv_cache_usage_ratio", engine="vllm", instance="a:8000", model="m"} 0.95`,
		`{__name__="llm_preemptions_per_second", engine="vllm", instance="a:8000", model="m"} 0.5`,
	}
	if !slices.Equal(evidence, wantEvidence) {
		t.Errorf("evidence:\n got  %s\n want %s", strings.Join(evidence, "\n      "), strings.Join(wantEvidence, "\n      "))
	}
	alerts := sent.take()
	if len(alerts) != 1 || !alerts[0].StartsAt.Equal(t0.Add(5*time.Minute)) || !alerts[0].EndsAt.Equal(t0.Add(9*time.Minute)) ||
		alerts[0].Labels.Get(labels.AlertName) != "LLMKVCachePressure" {
		t.Fatalf("sent at firing: %+v", alerts)
	}

	step(6, true)
	// Restored after the second evaluation, the rule writes ALERTS.
	if v := query(t, store, `ALERTS{alertname="LLMKVCachePressure",alertstate="firing",instance="a:8000"}`, t0.Add(6*time.Minute)); len(v) != 1 {
		t.Errorf("ALERTS at minute 6: %v", v)
	}
	detected := m.metrics.BottlenecksDetected.WithLabelValues("LLMKVCachePressure", "memory", "warning", "a:8000", "vllm", "m")
	if got := testutil.ToFloat64(detected); got != 1 {
		t.Errorf("perfagent_bottlenecks_detected_total = %v after one transition, want 1", got)
	}

	// Preemption stops at minute 7; the rule's 15m window sees none from
	// minute 21 on.
	for i := 7; i < 21; i++ {
		if bs := step(i, false); len(bs) != 1 || bs[0].State != StateFiring {
			t.Fatalf("minute %d, preemption still in the window: %+v", i, bs)
		}
	}
	sent.take()
	if bs := step(21, false); len(bs) != 0 {
		t.Fatalf("minute 21, preemption over: %+v", bs)
	}
	alerts = sent.take()
	if len(alerts) != 1 || !alerts[0].EndsAt.Equal(t0.Add(21*time.Minute)) {
		t.Fatalf("sent at resolution: %+v", alerts)
	}
	if got := testutil.ToFloat64(m.metrics.EvaluationFailures); got != 0 {
		t.Errorf("evaluation failures = %v", got)
	}
	if got := testutil.CollectAndCount(reg, "perfagent_rule_evaluation_duration_seconds"); got != 1 {
		t.Errorf("duration histogram series = %d", got)
	}
}

// TestManagerRestoresForState restarts the manager on the same TSDB and
// checks that `for` resumes from ALERTS_FOR_STATE instead of starting over.
func TestManagerRestoresForState(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// before: minutes evaluated by the first manager (from 0);
		// after: the first minute of the second one.
		before, after int
		// wantFiring is the first minute the second manager fires, and
		// wantActive its ActiveAt (minutes).
		wantFiring, wantActive int
	}{
		// Pending 3 minutes, down 2: 2 more minutes pending after the
		// restart, counted from the restore at the second evaluation.
		{name: "pending", before: 4, after: 6, wantFiring: 9, wantActive: 4},
		// Firing before the restart: fires again right after the restore,
		// with its original ActiveAt.
		{name: "firing", before: 7, after: 9, wantFiring: 11, wantActive: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store := openStore(t, dir)
			first := NewManager(onStore(store, ManagerOptions{EvaluationInterval: time.Minute}))
			if err := first.Update(BuiltinFiles()); err != nil {
				t.Fatal(err)
			}
			for i := range tc.before {
				ts := t0.Add(time.Duration(i) * time.Minute)
				appendAt(t, store, ts, kvPressure("a:8000", true)...)
				first.Eval(ctx, ts)
			}

			second := NewManager(onStore(store, ManagerOptions{EvaluationInterval: time.Minute}))
			if err := second.Update(BuiltinFiles()); err != nil {
				t.Fatal(err)
			}
			for i := tc.after; i <= tc.wantFiring; i++ {
				ts := t0.Add(time.Duration(i) * time.Minute)
				appendAt(t, store, ts, kvPressure("a:8000", true)...)
				second.Eval(ctx, ts)
				bs := second.Bottlenecks()
				if len(bs) != 1 {
					t.Fatalf("minute %d: %+v", i, bs)
				}
				wantState := StatePending
				if i == tc.wantFiring {
					wantState = StateFiring
				}
				if bs[0].State != wantState {
					t.Fatalf("minute %d: state %s, want %s (active since %s)", i, bs[0].State, wantState, bs[0].ActiveAt.Sub(t0))
				}
				if i == tc.wantFiring && !bs[0].ActiveAt.Equal(t0.Add(time.Duration(tc.wantActive)*time.Minute)) {
					t.Errorf("ActiveAt = %s, want %dm", bs[0].ActiveAt.Sub(t0), tc.wantActive)
				}
			}
		})
	}
}

const customRules = `groups:
  - name: custom
    rules:
      - alert: CustomQueue
        expr: llm_requests_waiting > 10
        for: 5m
        labels:
          category: throughput
          severity: warning
        annotations:
          summary: "{{ $labels.instance }} queues."
          description: DESCRIPTION
          runbook_url: https://example.com/runbook
          recommend: scale_out
`

func TestManagerUpdate(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	m := NewManager(onStore(store, ManagerOptions{EvaluationInterval: time.Minute}))
	file := tempRuleFile(t, strings.Replace(customRules, "DESCRIPTION", "first", 1))
	if err := m.Update([]string{file}); err != nil {
		t.Fatal(err)
	}
	queue := []point{{signal("llm_requests_waiting", "a:8000", "vllm", "m"), 20}}
	eval := func(i int) []Bottleneck {
		ts := t0.Add(time.Duration(i) * time.Minute)
		appendAt(t, store, ts, queue...)
		m.Eval(ctx, ts)
		return m.Bottlenecks()
	}
	check := func(i int, state State, description string) {
		t.Helper()
		bs := eval(i)
		if len(bs) != 1 || bs[0].State != state || !bs[0].ActiveAt.Equal(t0) || bs[0].Description != description {
			t.Fatalf("minute %d: want one %s bottleneck active since 0 described %q, got %+v", i, state, description, bs)
		}
	}
	check(0, StatePending, "first")
	check(1, StatePending, "first")

	// A broken file keeps the old rules.
	writeFile(t, file, strings.Replace(customRules, "category: throughput", "category: queue", 1))
	err := m.Update([]string{file})
	if err == nil || !strings.Contains(err.Error(), file+`:8:21: alert "CustomQueue": label category is "queue"`) {
		t.Fatalf("Update with a bad file: %v", err)
	}
	if gs := m.RuleGroups(); len(gs) != 1 || gs[0].File() != file {
		t.Fatalf("groups after a failed update: %v", gs)
	}
	check(2, StatePending, "first")

	// The same rules again: the group keeps running untouched.
	writeFile(t, file, strings.Replace(customRules, "DESCRIPTION", "first", 1))
	before := m.RuleGroups()[0]
	if err := m.Update([]string{file}); err != nil {
		t.Fatal(err)
	}
	if m.RuleGroups()[0] != before {
		t.Error("an unchanged group was replaced")
	}

	// A changed group takes over the alert state.
	writeFile(t, file, strings.Replace(customRules, "DESCRIPTION", "second", 1))
	if err := m.Update([]string{file}); err != nil {
		t.Fatal(err)
	}
	check(3, StatePending, "second")
	check(5, StateFiring, "second")
	if v := query(t, store, `ALERTS{alertname="CustomQueue"}`, t0.Add(5*time.Minute)); len(v) != 1 {
		t.Fatalf("ALERTS at minute 5: %v", v)
	}

	// Removed rules: their series are marked stale at the next Eval.
	if err := m.Update(nil); err != nil {
		t.Fatal(err)
	}
	if bs := eval(6); len(bs) != 0 {
		t.Fatalf("bottlenecks without rules: %+v", bs)
	}
	if v := query(t, store, `ALERTS{alertname="CustomQueue"}`, t0.Add(6*time.Minute)); len(v) != 0 {
		t.Errorf("ALERTS of a removed rule still there: %v", v)
	}
}

func TestManagerDisabled(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	m := NewManager(onStore(store, ManagerOptions{EvaluationInterval: time.Minute, Disabled: []string{"LLMKVCachePressure"}}))
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		appendAt(t, store, ts, kvPressure("a:8000", true)...)
		m.Eval(ctx, ts)
	}
	if bs := m.Bottlenecks(); len(bs) != 0 {
		t.Fatalf("disabled rule produced %+v", bs)
	}
}

func TestManagerCountsFailures(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	m := NewManager(onStore(store, ManagerOptions{}))
	// Two servers of one model make the one-to-one match fail at run time.
	file := tempRuleFile(t, strings.Replace(customRules, "llm_requests_waiting > 10", "llm_requests_waiting > on (model) llm_requests_running", 1))
	if err := m.Update([]string{file}); err != nil {
		t.Fatal(err)
	}
	appendAt(t, store, t0,
		point{signal("llm_requests_waiting", "a:8000", "vllm", "m"), 1},
		point{signal("llm_requests_waiting", "b:8000", "vllm", "m"), 1},
		point{signal("llm_requests_running", "a:8000", "vllm", "m"), 1},
		point{signal("llm_requests_running", "b:8000", "vllm", "m"), 1},
	)
	m.Eval(ctx, t0)
	if got := testutil.ToFloat64(m.metrics.EvaluationFailures); got != 1 {
		t.Errorf("failures = %v, want 1", got)
	}
	if err := m.RuleGroups()[0].Rules()[0].LastError(); err == nil {
		t.Error("the rule keeps no error")
	}
}

// TestManagerEvidence checks that evidence holds the signals a rule reads
// that exist, narrowed by its selectors (no p50 ITL), and the SLO targets
// that apply: the model's own, or the default.
func TestManagerEvidence(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	m := NewManager(onStore(store, ManagerOptions{EvaluationInterval: time.Minute}))
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	fast := []config.SLOTarget{{Model: "fast", ITLP95: config.Duration(30 * time.Millisecond)}}
	quantile := func(l labels.Labels, q string) labels.Labels { return labels.NewBuilder(l).Set("quantile", q).Labels() }
	for i := range 6 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		appendAt(t, store, ts,
			point{quantile(signal("llm_inter_token_latency_seconds", "a:8000", "vllm", "m"), "0.95"), 0.08},
			point{quantile(signal("llm_inter_token_latency_seconds", "a:8000", "vllm", "m"), "0.5"), 0.02},
			point{quantile(signal("llm_inter_token_latency_seconds", "b:8000", "vllm", "fast"), "0.95"), 0.04},
			point{signal("llm_requests_waiting", "a:8000", "vllm", "m"), 0},
			point{signal("llm_requests_waiting", "b:8000", "vllm", "fast"), 0},
		)
		app := store.Appender(ctx)
		if err := AppendSLOTargets(app, ts.UnixMilli(), fast); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		m.Eval(ctx, ts)
	}
	got := map[string][]string{}
	for _, b := range m.Bottlenecks() {
		if b.State != StateFiring || b.Rule != "LLMDecodeBoundITL" {
			t.Errorf("unexpected bottleneck %s %s on %s", b.State, b.Rule, b.Instance)
			continue
		}
		for _, s := range b.Evidence {
			got[b.Instance] = append(got[b.Instance], s.Labels.String()+" "+strconv.FormatFloat(s.Value, 'g', -1, 64))
		}
	}
	want := map[string][]string{
		"a:8000": {
			`{__name__="llm_inter_token_latency_seconds", engine="vllm", instance="a:8000", model="m", quantile="0.95"} 0.08`,
			`{__name__="llm_requests_waiting", engine="vllm", instance="a:8000", model="m"} 0`,
			`{__name__="perfagent_slo_itl_p95_seconds"} 0.05`,
			`{__name__="perfagent_slo_ttft_p95_seconds"} 0.5`,
		},
		"b:8000": {
			`{__name__="llm_inter_token_latency_seconds", engine="vllm", instance="b:8000", model="fast", quantile="0.95"} 0.04`,
			`{__name__="llm_requests_waiting", engine="vllm", instance="b:8000", model="fast"} 0`,
			`{__name__="perfagent_slo_itl_p95_seconds", model="fast"} 0.03`,
			`{__name__="perfagent_slo_ttft_p95_seconds"} 0.5`,
		},
	}
	for inst, w := range want {
		if !slices.Equal(got[inst], w) {
			t.Errorf("evidence of %s:\n got  %s\n want %s", inst, strings.Join(got[inst], "\n      "), strings.Join(w, "\n      "))
		}
	}
}

// TestManagerGroupInterval checks that a group with a longer interval than
// the evaluation interval skips evaluations, and that each group's last
// evaluation is kept and exported as upstream's group metrics.
func TestManagerGroupInterval(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	reg := prometheus.NewRegistry()
	m := NewManager(onStore(store, ManagerOptions{EvaluationInterval: time.Minute, Registerer: reg}))
	content := strings.Replace(strings.Replace(customRules, "DESCRIPTION", "d", 1), "  - name: custom\n", "  - name: custom\n    interval: 3m\n", 1)
	if err := m.Update([]string{tempRuleFile(t, content), BuiltinPrefix + "forecasts.yml"}); err != nil {
		t.Fatal(err)
	}
	for _, g := range m.RuleGroups() {
		if _, ok := m.GroupEvaluation(g); ok {
			t.Errorf("group %s has an evaluation before the first Eval", g.Name())
		}
	}
	for i := range 5 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		appendAt(t, store, ts, point{signal("llm_requests_waiting", "a:8000", "vllm", "m"), float64(11 + i)})
		m.Eval(ctx, ts)
	}
	// Evaluated at minutes 0 and 3 only: the value is minute 3's.
	if bs := m.Bottlenecks(); len(bs) != 1 || bs[0].Value != 14 {
		t.Fatalf("bottlenecks: %+v", bs)
	}
	last := map[string]time.Duration{"custom": 3 * time.Minute, "perfagent-forecasts": 4 * time.Minute}
	for _, g := range m.RuleGroups() {
		e, ok := m.GroupEvaluation(g)
		if want := t0.Add(last[g.Name()]); !ok || !e.At.Equal(want) || e.Took <= 0 {
			t.Errorf("group %s: last evaluation %+v (%v), want at %s and a duration", g.Name(), e, ok, want)
		}
		key := promrules.GroupKey(g.File(), g.Name())
		gm := m.promOpts.Metrics
		if got := testutil.ToFloat64(gm.GroupLastEvalTime.WithLabelValues(key)); got != float64(e.At.Unix()) {
			t.Errorf("group %s: last evaluation timestamp metric %v, want %d", g.Name(), got, e.At.Unix())
		}
		if got := testutil.ToFloat64(gm.GroupLastDuration.WithLabelValues(key)); got != e.Took.Seconds() {
			t.Errorf("group %s: last duration metric %v, want %v", g.Name(), got, e.Took.Seconds())
		}
	}
	// A removed group's series go at the next evaluation.
	if err := m.Update([]string{BuiltinPrefix + "forecasts.yml"}); err != nil {
		t.Fatal(err)
	}
	m.Eval(ctx, t0.Add(5*time.Minute))
	for _, name := range []string{"prometheus_rule_group_last_evaluation_timestamp_seconds", "prometheus_rule_group_interval_seconds", "prometheus_rule_evaluations_total"} {
		if n := testutil.CollectAndCount(reg, name); n != 1 {
			t.Errorf("%s has %d series after the custom group was removed, want 1", name, n)
		}
	}
}

// TestManagerConcurrentReads reads while evaluating and updating, for the
// race detector.
func TestManagerConcurrentReads(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	m := NewManager(onStore(store, ManagerOptions{EvaluationInterval: time.Minute}))
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := NewBottlenecksCollector(m.Bottlenecks)
		for {
			select {
			case <-done:
				return
			default:
				_ = m.Bottlenecks()
				_ = m.RuleGroups()
				_ = testutil.CollectAndCount(c)
			}
		}
	}()
	for i := range 7 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		appendAt(t, store, ts, kvPressure("a:8000", true)...)
		m.Eval(ctx, ts)
		if i == 3 {
			if err := m.Update(BuiltinFiles()); err != nil {
				t.Error(err)
			}
		}
	}
	close(done)
	wg.Wait()
	if bs := m.Bottlenecks(); len(bs) != 1 || bs[0].State != StateFiring {
		t.Fatalf("bottlenecks: %+v", bs)
	}
}

func TestManagerWithoutStore(t *testing.T) {
	m := NewManager(ManagerOptions{})
	if got := m.HistoryNeeded(); got != 0 {
		t.Errorf("history needed without rules: %s", got)
	}
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	// LLMUnderutilized: for 15m over a 30m window.
	if got := m.HistoryNeeded(); got != 45*time.Minute {
		t.Errorf("history needed by the built-in pack: %s, want 45m", got)
	}
	m.Eval(context.Background(), t0)
	if bs := m.Bottlenecks(); len(bs) > 0 || len(m.RuleGroups()) == 0 {
		t.Fatalf("evaluated without a store: bottlenecks %+v, %d groups", bs, len(m.RuleGroups()))
	}
}

// TestPrepareTakesEffectOnlyOnCommit: a prepared configuration changes
// nothing until committed; then its disabled names and interval are in
// force; a bad one is refused whole.
func TestPrepareTakesEffectOnlyOnCommit(t *testing.T) {
	m := NewManager(ManagerOptions{EvaluationInterval: 15 * time.Second})
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	// The interval is that of a group without one of its own.
	alerts := func() (names map[string]bool, interval time.Duration) {
		names = map[string]bool{}
		for _, g := range m.RuleGroups() {
			if g.Name() == "perfagent-memory" {
				interval = g.Interval()
			}
			for _, r := range g.AlertingRules() {
				names[r.Name()] = true
			}
		}
		return names, interval
	}
	if names, iv := alerts(); !names["LLMKVCachePressure"] || iv != 15*time.Second {
		t.Fatalf("after Update: LLMKVCachePressure %v, interval %v", names["LLMKVCachePressure"], iv)
	}
	if _, err := m.Prepare(Config{Files: append(BuiltinFiles(), "testdata/does-not-exist.yml"), Disabled: []string{"LLMKVCachePressure"}}); err == nil {
		t.Fatal("a missing rule file was accepted")
	}
	commit, err := m.Prepare(Config{Files: BuiltinFiles(), Interval: 30 * time.Second, Disabled: []string{"LLMKVCachePressure"}})
	if err != nil {
		t.Fatal(err)
	}
	if names, iv := alerts(); !names["LLMKVCachePressure"] || iv != 15*time.Second {
		t.Errorf("before commit: LLMKVCachePressure %v, interval %v; want the old rules", names["LLMKVCachePressure"], iv)
	}
	commit()
	if names, iv := alerts(); names["LLMKVCachePressure"] || iv != 30*time.Second {
		t.Errorf("after commit: LLMKVCachePressure %v, interval %v; want it disabled and 30s", names["LLMKVCachePressure"], iv)
	}
}

// onStore has o evaluate on the local TSDB store.
func onStore(store *signalstore.Store, o ManagerOptions) ManagerOptions {
	o.Queryable, o.Appendable, o.QueryFunc = store.DB(), store.DB(), store.QueryFunc()
	return o
}

// TestRuleEvidenceKeepsReadsOfActiveAlerts checks that an alert's
// evidence reads are built from its own instance, engine and model, kept
// for the next evaluation, and dropped once the alert is no longer active.
func TestRuleEvidenceKeepsReadsOfActiveAlerts(t *testing.T) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(`llm_requests_waiting{engine="vllm"} > perfagent_slo_ttft_p95_seconds`)
	if err != nil {
		t.Fatal(err)
	}
	r := &ruleEvidence{selectors: vectorSelectors(expr)}
	a := labels.FromStrings(signals.LabelInstance, "a:8000", signals.LabelEngine, "vllm", signals.LabelModel, "m")
	b := labels.FromStrings(signals.LabelInstance, "b:8000", signals.LabelEngine, "vllm", signals.LabelModel, "n")
	want := []evidenceRead{
		{query: `llm_requests_waiting{engine="vllm",model="m"}`, id: labels.FromStrings(signals.LabelEngine, "vllm", signals.LabelInstance, "a:8000", signals.LabelModel, "m")},
		{query: `perfagent_slo_ttft_p95_seconds{model="m"}`, fallback: `perfagent_slo_ttft_p95_seconds{model=""}`, id: labels.EmptyLabels()},
	}
	same := func(x, y []evidenceRead) bool {
		return slices.EqualFunc(x, y, func(p, q evidenceRead) bool {
			return p.query == q.query && p.fallback == q.fallback && labels.Equal(p.id, q.id)
		})
	}
	first := r.reads(a)
	if !same(first, want) {
		t.Fatalf("reads of a:\n got  %+v\n want %+v", first, want)
	}
	if got := r.reads(b); got[0].query != `llm_requests_waiting{engine="vllm",model="n"}` {
		t.Errorf("reads of b start with %q", got[0].query)
	}
	r.rotate()
	if got := r.reads(a); &got[0] != &first[0] {
		t.Error("the reads of a were built again at the next evaluation")
	}
	r.rotate()
	r.rotate()
	if len(r.kept) != 0 {
		t.Errorf("%d alerts' reads kept after two evaluations without them", len(r.kept))
	}
	moved := labels.NewBuilder(a).Set(signals.LabelModel, "n").Labels()
	if got := r.reads(moved); !same(got[:1], []evidenceRead{{query: `llm_requests_waiting{engine="vllm",model="n"}`, id: labels.FromStrings(signals.LabelEngine, "vllm", signals.LabelInstance, "a:8000", signals.LabelModel, "n")}}) {
		t.Errorf("reads of a serving another model: %+v", got)
	}
}

// TestEvidenceListsEachSeriesOnce checks that a series two reads find is
// listed once, in label order, and that a read's fallback answers only
// when the read itself finds nothing.
func TestEvidenceListsEachSeriesOnce(t *testing.T) {
	p95 := labels.FromStrings(model.MetricNameLabel, "itl", signals.LabelInstance, "a:8000", "quantile", "0.95")
	p50 := labels.FromStrings(model.MetricNameLabel, "itl", signals.LabelInstance, "a:8000", "quantile", "0.5")
	other := labels.FromStrings(model.MetricNameLabel, "itl", signals.LabelInstance, "b:8000", "quantile", "0.95")
	slo := labels.FromStrings(model.MetricNameLabel, "slo")
	answers := map[string]promql.Vector{
		`itl`:           {{Metric: p95, F: 1}, {Metric: p50, F: 2}, {Metric: other, F: 3}},
		`itl{q="95"}`:   {{Metric: p95, F: 1}},
		`slo{model=""}`: {{Metric: slo, F: 4}},
	}
	q := &evidenceQueries{
		query: func(_ context.Context, expr string, _ time.Time) (promql.Vector, error) {
			return answers[expr], nil
		},
		logger:  promslog.NewNopLogger(),
		results: map[string]evidenceResult{},
	}
	id := labels.FromStrings(signals.LabelInstance, "a:8000")
	got := q.evidence(context.Background(), []evidenceRead{
		{query: `itl{q="95"}`, id: id},
		{query: `itl`, id: id},
		{query: `slo{model="m"}`, fallback: `slo{model=""}`, id: labels.EmptyLabels()},
	})
	want := []signals.Sample{{Labels: p50, Value: 2}, {Labels: p95, Value: 1}, {Labels: slo, Value: 4}}
	if !slices.EqualFunc(got, want, func(a, b signals.Sample) bool { return labels.Equal(a.Labels, b.Labels) && a.Value == b.Value }) {
		t.Errorf("evidence:\n got  %v\n want %v", got, want)
	}
}

// TestSGLangRetractionSpellCountsFor15Minutes checks B1's SGLang branch
// through its recording rule: six minutes of retractions at 3 a minute
// (too few for the 15-minute mean) make a spell that LLMKVCachePressure
// fires on and holds for 15 minutes after it ends, and no longer.
func TestSGLangRetractionSpellCountsFor15Minutes(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	m := NewManager(onStore(store, ManagerOptions{EvaluationInterval: 15 * time.Second}))
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	firing := func() bool {
		for _, b := range m.Bottlenecks() {
			if b.Rule == "LLMKVCachePressure" && b.State == StateFiring {
				return true
			}
		}
		return false
	}
	var firstFiring, lastFiring time.Duration
	for i := range 26 * 4 {
		at := time.Duration(i) * 15 * time.Second
		retractions := 0.0
		if at < 6*time.Minute {
			retractions = 0.05
		}
		appendAt(t, store, t0.Add(at),
			point{signal("llm_kv_cache_usage_ratio", "s:1", "sglang", "m"), 0.95},
			point{signal("llm_preemptions_per_second", "s:1", "sglang", "m"), retractions},
		)
		m.Eval(ctx, t0.Add(at))
		if firing() {
			if firstFiring == 0 {
				firstFiring = at
			}
			lastFiring = at
		}
	}
	// The spell holds while the 5-minute mean exceeds 1/30: until 7m30s.
	if firstFiring == 0 || firstFiring > 10*time.Minute {
		t.Errorf("LLMKVCachePressure first fired at %s, want by 10m (a spell from the start, `for: 5m`)", firstFiring)
	}
	if lastFiring < 21*time.Minute || lastFiring > 23*time.Minute {
		t.Errorf("LLMKVCachePressure last fired at %s, want 15 minutes after the spell, 21m–23m", lastFiring)
	}
}
