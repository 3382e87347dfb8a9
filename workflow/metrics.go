package workflow

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the workflow package's counters.
type Metrics struct {
	Transitions *prometheus.CounterVec
	Validations *prometheus.CounterVec
}

// NewMetrics registers the workflow counters with reg; a nil reg registers
// nowhere.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Transitions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "perfagent_workflow_transitions_total",
			Help: "Workflow state transitions, by state left and state entered.",
		}, []string{"from", "to"}),
		Validations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "perfagent_workflow_validations_total",
			Help: "Canary-versus-baseline validations, by result (pass, fail, inconclusive, error).",
		}, []string{"result"}),
	}
	for _, r := range []string{string(VerdictPass), string(VerdictFail), string(VerdictInconclusive), "error"} {
		m.Validations.WithLabelValues(r)
	}
	return m
}

// WorkflowsCollector exports, read from the store at scrape time:
// perfagent_workflows{state}, the number of stored workflows in each state;
// and for each unfinished workflow perfagent_workflow_info (what it
// changes), perfagent_workflow_instances_changed (instances changed and not
// restored; in needs_attention they wait for a person),
// perfagent_workflow_stage and perfagent_workflow_stages (progress),
// perfagent_workflow_deadline_timestamp_seconds (when the current wait
// should end: a gate's expiry, the end of a warm-up or window) and
// perfagent_workflow_gate_opened_timestamp_seconds (an open gate's start).
type WorkflowsCollector struct {
	store                              Store
	desc, info, changed, stage, stages *prometheus.Desc
	deadline, gateOpened               *prometheus.Desc
}

// NewWorkflowsCollector returns a collector over store.
func NewWorkflowsCollector(store Store) *WorkflowsCollector {
	wf := []string{"workflow", "state"}
	return &WorkflowsCollector{
		store: store,
		desc:  prometheus.NewDesc("perfagent_workflows", "Workflows in the store, by state.", []string{"state"}, nil),
		info: prometheus.NewDesc("perfagent_workflow_info", "An unfinished workflow (value 1): the flag it changes, from and to which value, on which engine and model.",
			[]string{"workflow", "state", "engine", "model", "flag", "from", "to"}, nil),
		changed: prometheus.NewDesc("perfagent_workflow_instances_changed",
			"Instances an unfinished workflow has changed and not restored; in state needs_attention they wait for a person.", wf, nil),
		stage:  prometheus.NewDesc("perfagent_workflow_stage", "Stages of an unfinished workflow that are behind it (0 before the first is applied).", wf, nil),
		stages: prometheus.NewDesc("perfagent_workflow_stages", "Stages of an unfinished workflow in all.", wf, nil),
		deadline: prometheus.NewDesc("perfagent_workflow_deadline_timestamp_seconds",
			"When the current wait of an unfinished workflow ends: an open gate's expiry, or the end of a warm-up or analysis window.", wf, nil),
		gateOpened: prometheus.NewDesc("perfagent_workflow_gate_opened_timestamp_seconds",
			"When the open gate of a workflow started to wait for a decision.", []string{"workflow", "state", "gate"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *WorkflowsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.desc, c.info, c.changed, c.stage, c.stages, c.deadline, c.gateOpened} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *WorkflowsCollector) Collect(ch chan<- prometheus.Metric) {
	ws, err := c.store.List(Filter{NoEvents: true})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	counts := make(map[State]int)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, w := range ws {
		counts[w.State]++
		if w.State.Terminal() {
			continue
		}
		id, state := w.ID, w.State.String()
		gauge(c.info, 1, id, state, w.Change.Engine, w.Change.Model, w.Change.Flag, w.Change.From, w.Change.To)
		gauge(c.changed, float64(len(w.Changed())), id, state)
		gauge(c.stage, float64(min(w.Stage, len(w.Stages))), id, state)
		gauge(c.stages, float64(len(w.Stages)), id, state)
		deadline := w.Deadline
		if g, ok := w.OpenGate(); ok && w.State.Waiting() {
			gauge(c.gateOpened, float64(g.OpenedAt.UnixMilli())/1000, id, state, g.Name)
			deadline = g.ExpiresAt
		}
		if !deadline.IsZero() {
			gauge(c.deadline, float64(deadline.UnixMilli())/1000, id, state)
		}
	}
	for _, s := range States() {
		gauge(c.desc, float64(counts[s]), s.String())
	}
}
