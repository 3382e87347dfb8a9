package cost

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/optiinfra/perfagent/signals"
)

// LabelCurrency is the label of the cost metrics naming the ISO 4217 code
// of their value, cost.currency.
const LabelCurrency = "currency"

// Collector exports the cost of every priced instance.
type Collector struct {
	costs                     func() []Instance
	perHour, perMillion, idle *prometheus.Desc
}

// NewCollector exports what costs returns at each scrape.
func NewCollector(costs func() []Instance) *Collector {
	// The currency is a label so that a sum over agents that price in
	// different currencies keeps them apart instead of adding them.
	ids := []string{signals.LabelInstance, signals.LabelEngine, signals.LabelModel, LabelCurrency}
	return &Collector{
		costs: costs,
		perHour: prometheus.NewDesc("perfagent_cost_per_hour",
			"What the instance's GPUs cost per hour, from cost.gpu_hour_prices, in the currency of its label (docs/cost.md).", ids, nil),
		perMillion: prometheus.NewDesc("perfagent_cost_per_million_tokens",
			"What a million prompt or generated tokens (direction) cost at the instance's token rates, the hour's cost split between the directions by weighted tokens (docs/cost.md).",
			append(ids, "direction"), nil),
		idle: prometheus.NewDesc("perfagent_idle_cost_per_hour",
			"The unused share of the hour's cost of an instance whose LLMUnderutilized (B6) bottleneck fires (docs/cost.md).", ids, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.perHour
	ch <- c.perMillion
	ch <- c.idle
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, in := range c.costs() {
		send(ch, c.perHour, prometheus.GaugeValue, in.PerHour, in.Instance, in.Engine, in.Model, in.Currency)
		if v := in.PromptPerMillionTokens; v != nil {
			send(ch, c.perMillion, prometheus.GaugeValue, *v, in.Instance, in.Engine, in.Model, in.Currency, "prompt")
		}
		if v := in.GenerationPerMillionTokens; v != nil {
			send(ch, c.perMillion, prometheus.GaugeValue, *v, in.Instance, in.Engine, in.Model, in.Currency, "generation")
		}
		if v := in.IdlePerHour; v != nil {
			send(ch, c.idle, prometheus.GaugeValue, *v, in.Instance, in.Engine, in.Model, in.Currency)
		}
	}
}

// send passes on a metric, or an invalid one when a label value is not
// valid UTF-8.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
