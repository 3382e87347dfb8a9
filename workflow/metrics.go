package workflow

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of an alert notification, the values of the outcome label.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDropped = "dropped"
)

// Metrics are the workflow package's counters.
type Metrics struct {
	Transitions   *prometheus.CounterVec
	Validations   *prometheus.CounterVec
	Notifications *prometheus.CounterVec
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
		Notifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "perfagent_alertmanager_notifications_total",
			Help: "Alerts posted to an Alertmanager, counted per alert and Alertmanager, by outcome (success, failure, dropped).",
		}, []string{"outcome"}),
	}
	for _, r := range []string{string(VerdictPass), string(VerdictFail), string(VerdictInconclusive), "error"} {
		m.Validations.WithLabelValues(r)
	}
	for _, o := range []string{OutcomeSuccess, OutcomeFailure, OutcomeDropped} {
		m.Notifications.WithLabelValues(o)
	}
	return m
}

// WorkflowsCollector exports perfagent_workflows{state}, the number of
// stored workflows in each state, and
// perfagent_workflow_instances_changed{workflow,state}, the instances each
// unfinished workflow has changed and not restored, read from the store at
// scrape time.
type WorkflowsCollector struct {
	store   Store
	desc    *prometheus.Desc
	changed *prometheus.Desc
}

// NewWorkflowsCollector returns a collector over store.
func NewWorkflowsCollector(store Store) *WorkflowsCollector {
	return &WorkflowsCollector{
		store: store,
		desc:  prometheus.NewDesc("perfagent_workflows", "Workflows in the store, by state.", []string{"state"}, nil),
		changed: prometheus.NewDesc("perfagent_workflow_instances_changed",
			"Instances an unfinished workflow has changed and not restored; in state needs_attention they wait for a person.",
			[]string{"workflow", "state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *WorkflowsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.changed
}

// Collect implements prometheus.Collector.
func (c *WorkflowsCollector) Collect(ch chan<- prometheus.Metric) {
	ws, err := c.store.List(Filter{NoEvents: true})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	counts := make(map[State]int)
	for _, w := range ws {
		counts[w.State]++
		if !w.State.Terminal() {
			ch <- prometheus.MustNewConstMetric(c.changed, prometheus.GaugeValue, float64(len(w.Changed())), w.ID, w.State.String())
		}
	}
	for _, s := range States() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), s.String())
	}
}
