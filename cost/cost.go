package cost

import (
	"fmt"
	"math"
	"sort"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
)

// Signals the token rates are read from.
const (
	PromptTokensPerSecond     = "llm_prompt_tokens_per_second"
	GenerationTokensPerSecond = "llm_generation_tokens_per_second"
)

// Where an instance's GPU count came from.
const (
	GPUsFromConfig  = "config"
	GPUsFromSetting = "setting"
	GPUsFromModel   = "model"
	// GPUsAssumed is one GPU, taken when nothing says otherwise.
	GPUsAssumed = "assumed"
)

// tpSettings are the tensor-parallel settings of the engines, under their
// collector.Settings names: vLLM, SGLang, TGI.
var tpSettings = []string{"tensor_parallel_size", "tp_size", "num_shard"}

// Pricing prices instances from the configuration. It is immutable.
type Pricing struct {
	prices       map[string]float64
	accelerator  string
	promptWeight float64
	currency     string
	facts        map[string]config.InstanceConfig
	modelTP      map[string]int
}

// NewPricing returns the pricing cfg describes, or nil when it prices
// nothing. cfg must be valid.
func NewPricing(cfg *config.Config) *Pricing {
	if !cfg.Cost.Priced() {
		return nil
	}
	p := &Pricing{
		prices:       make(map[string]float64, len(cfg.Cost.GPUHourPrices)),
		accelerator:  cfg.Cost.DefaultAccelerator,
		promptWeight: cfg.Cost.PromptTokenWeight,
		currency:     cfg.Cost.Currency,
		facts:        cfg.InstanceFacts(),
		modelTP:      map[string]int{},
	}
	for k, v := range cfg.Cost.GPUHourPrices {
		p.prices[k] = v
	}
	for _, m := range cfg.Recommender.Models {
		if m.TensorParallelSize > 0 {
			p.modelTP[m.Name] = m.TensorParallelSize
		}
	}
	return p
}

// Instance is what one instance costs. The per-million figures are absent
// when the instance produced no tokens of that direction.
type Instance struct {
	Instance    string `json:"instance"`
	Engine      string `json:"engine"`
	Model       string `json:"model"`
	Accelerator string `json:"accelerator"`
	GPUs        int    `json:"gpus"`
	// GPUsSource is config, setting, model or assumed.
	GPUsSource string `json:"gpus_source"`
	// Currency is the ISO 4217 code of every figure below, cost.currency.
	Currency string `json:"currency"`
	// PerHour is GPUs × the accelerator's price per GPU-hour.
	PerHour float64 `json:"per_hour"`
	// PromptPerMillionTokens and GenerationPerMillionTokens split the
	// hour's cost between the directions by weighted token counts.
	PromptPerMillionTokens     *float64 `json:"prompt_per_million_tokens,omitempty"`
	GenerationPerMillionTokens *float64 `json:"generation_per_million_tokens,omitempty"`
	// PerMillionTokens is the hour's cost over all tokens, prompt and
	// generated alike; recommendations' cost changes are given in it.
	PerMillionTokens *float64 `json:"per_million_tokens,omitempty"`
	// TokensPerSecond is the prompt and generated tokens per second
	// together.
	TokensPerSecond float64 `json:"tokens_per_second"`
	// PromptTokensPerSecond and GenerationTokensPerSecond are its two
	// parts, the rates the directions' costs are split by.
	PromptTokensPerSecond     float64 `json:"prompt_tokens_per_second"`
	GenerationTokensPerSecond float64 `json:"generation_tokens_per_second"`
	// IdlePerHour is the unused share of the hour's cost of an instance
	// whose LLMUnderutilized (B6) bottleneck fires.
	IdlePerHour *float64 `json:"idle_per_hour,omitempty"`
}

// Instances prices every instance of snap that has an accelerator with a
// price, sorted by instance. underutilized says whether an instance's B6
// bottleneck fires; nil means none does.
func (p *Pricing) Instances(snap *collector.Snapshot, underutilized func(instance string) bool) []Instance {
	if p == nil || snap == nil {
		return nil
	}
	var out []Instance
	for _, in := range snap.Instances {
		c, ok := p.instance(in)
		if !ok {
			continue
		}
		if underutilized != nil && underutilized(in.Instance) {
			if busy, ok := utilization(in); ok {
				c.IdlePerHour = ptr(c.PerHour * (1 - busy))
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}

func (p *Pricing) instance(in *collector.Instance) (Instance, bool) {
	f := p.facts[in.Instance]
	accel := f.Accelerator
	if accel == "" {
		accel = p.accelerator
	}
	price, ok := p.prices[accel]
	if !ok {
		return Instance{}, false
	}
	gpus, src := p.gpus(in, f)
	c := Instance{Instance: in.Instance, Engine: in.Engine, Model: in.Model, Accelerator: accel, GPUs: gpus, GPUsSource: src, Currency: p.currency, PerHour: float64(gpus) * price}
	prompt, _ := signal(in, PromptTokensPerSecond)
	gen, _ := signal(in, GenerationTokensPerSecond)
	c.PromptTokensPerSecond, c.GenerationTokensPerSecond = rate(prompt), rate(gen)
	c.PromptPerMillionTokens, c.GenerationPerMillionTokens = Split(c.PerHour, prompt, gen, p.promptWeight)
	c.TokensPerSecond = c.PromptTokensPerSecond + c.GenerationTokensPerSecond
	c.PerMillionTokens = PerMillion(c.PerHour, c.TokensPerSecond)
	return c, true
}

// gpus is the instance's GPU count: configured, else its tensor-parallel
// setting, else its model's configured tensor parallelism, else one.
func (p *Pricing) gpus(in *collector.Instance, f config.InstanceConfig) (int, string) {
	if f.GPUs > 0 {
		return f.GPUs, GPUsFromConfig
	}
	for _, s := range tpSettings {
		if v, ok := in.Settings.Float(s); ok && v >= 1 && v == math.Trunc(v) {
			return int(v), GPUsFromSetting
		}
	}
	if tp, ok := p.modelTP[in.Model]; ok {
		return tp, GPUsFromModel
	}
	return 1, GPUsAssumed
}

// PerMillion is the cost of a million tokens at tokensPerSecond when an
// hour costs perHour; nil without tokens.
func PerMillion(perHour, tokensPerSecond float64) *float64 {
	if !(tokensPerSecond > 0) || math.IsInf(tokensPerSecond, 0) {
		return nil
	}
	return ptr(perHour / (tokensPerSecond * 3600) * 1e6)
}

// Split divides an hour's cost between prompt and generated tokens in
// proportion to their rates, a prompt token counting weight generated
// tokens, and returns each direction's cost per million tokens: so a
// million prompt tokens cost weight times a million generated ones, and
// the two directions' costs add up to the hour's. A direction without
// tokens gets nil and none of the cost.
func Split(perHour, prompt, generation, weight float64) (promptPerMillion, generationPerMillion *float64) {
	prompt, generation = rate(prompt), rate(generation)
	units := weight*prompt + generation
	if !(units > 0) {
		return nil, nil
	}
	// Cost of one generated-token unit per second, scaled to a million.
	unit := perHour / (units * 3600) * 1e6
	if prompt > 0 {
		promptPerMillion = ptr(unit * weight)
	}
	if generation > 0 {
		generationPerMillion = ptr(unit)
	}
	return promptPerMillion, generationPerMillion
}

func rate(v float64) float64 {
	if v > 0 && !math.IsInf(v, 0) {
		return v
	}
	return 0
}

// utilization is the busier of the KV cache in use and the running batch
// over its cap, the share of the instance that serves.
func utilization(in *collector.Instance) (float64, bool) {
	busy, found := 0.0, false
	if u, ok := signal(in, "llm_kv_cache_usage_ratio"); ok {
		busy, found = u, true
	}
	r, ok1 := signal(in, "llm_requests_running")
	c, ok2 := signal(in, "llm_max_running_requests")
	if ok1 && ok2 && c > 0 {
		busy, found = math.Max(busy, r/c), true
	}
	return math.Min(1, math.Max(0, busy)), found
}

func signal(in *collector.Instance, name string) (float64, bool) {
	for _, s := range in.Signals {
		if s.Name == name && s.Quantile == "" && !math.IsNaN(s.Value) {
			return s.Value, true
		}
	}
	return 0, false
}

func ptr(v float64) *float64 { return &v }

// round keeps six significant decimals, enough for any price.
func round(v float64) float64 { return math.Round(v*1e6) / 1e6 }

func num(v float64) string { return fmt.Sprintf("%g", round(v)) }
