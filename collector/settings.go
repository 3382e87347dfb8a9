package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/signals"
)

// Where a setting's value came from, in rising order of precedence.
const (
	SettingFromMetrics = "metrics"
	SettingFromProbe   = "probe"
	SettingFromConfig  = "config"
)

// Setting is one engine setting of an instance. Values are strings, as the
// engines report them ("0.9", "True", "auto").
type Setting struct {
	Value  string `json:"value"`
	Source string `json:"source"`
}

// Settings maps a setting's name (the engine's flag name in snake_case,
// e.g. gpu_memory_utilization) to its value.
type Settings map[string]Setting

// Float returns a setting as a number.
func (s Settings) Float(name string) (float64, bool) {
	v, ok := s[name]
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v.Value, 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// merge sets every value of from whose source ranks at least as high as
// the one already held.
func (s Settings) merge(from map[string]string, source string) {
	rank := map[string]int{SettingFromMetrics: 0, SettingFromProbe: 1, SettingFromConfig: 2}
	for k, v := range from {
		if old, ok := s[k]; ok && rank[old.Source] > rank[source] {
			continue
		}
		s[k] = Setting{Value: v, Source: source}
	}
}

// settingsQuery reads the settings an engine exports as metrics, with one
// query per engine per cycle.
type settingsQuery struct {
	expr    string
	extract func(promql.Vector) map[string]map[string]string
}

// builtinSettingsQueries are keyed by engine. vLLM puts its cache
// configuration into the labels of an info-style gauge; SGLang, TGI and
// TensorRT-LLM export some settings as gauges of their own.
func builtinSettingsQueries() map[string]settingsQuery {
	return map[string]settingsQuery{
		signals.EngineVLLM: {
			expr: "vllm:cache_config_info",
			extract: func(v promql.Vector) map[string]map[string]string {
				out := map[string]map[string]string{}
				for _, s := range v {
					inst := s.Metric.Get(signals.LabelInstance)
					m := out[inst]
					if m == nil {
						m = map[string]string{}
						out[inst] = m
					}
					s.Metric.Range(func(l labels.Label) {
						switch l.Name {
						case "__name__", "instance", "job", "engine", "model_name":
							return
						}
						if l.Value != "" && l.Value != "None" {
							m[l.Name] = l.Value
						}
					})
				}
				return out
			},
		},
		signals.EngineSGLang: {
			expr:    `{__name__=~"sglang:(max_total_num_tokens|context_len|page_size|num_pages|max_running_requests|max_prefill_tokens)"}`,
			extract: gaugeSettings("sglang:", nil),
		},
		signals.EngineTGI: {
			expr:    "tgi_batch_max_total_tokens",
			extract: gaugeSettings("", map[string]string{"tgi_batch_max_total_tokens": "max_batch_total_tokens"}),
		},
		// The TensorRT-LLM backend reports its request cap (the engine's
		// max_batch_size) and its KV-cache blocks as gauges split by a label.
		signals.EngineTRTLLM: {
			expr: `nv_trt_llm_request_metrics{request_type="max"} or nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=~"max|tokens_per"}`,
			extract: labelledGaugeSettings(map[string]string{
				`nv_trt_llm_request_metrics{request_type="max"}`:                      "max_batch_size",
				`nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max"}`:        "max_num_blocks",
				`nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per"}`: "tokens_per_block",
			}),
		},
	}
}

// labelledGaugeSettings turns gauges into settings named by the metric and
// its one distinguishing label, written name{label="value"} in names.
// Series of the same instance differing only in other labels (Triton's
// model version) take the last value.
func labelledGaugeSettings(names map[string]string) func(promql.Vector) map[string]map[string]string {
	return func(v promql.Vector) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, s := range v {
			for key, setting := range names {
				metric, matcher, _ := strings.Cut(strings.TrimSuffix(key, "}"), "{")
				label, value, _ := strings.Cut(matcher, "=")
				if s.Metric.Get("__name__") != metric || s.Metric.Get(label) != strings.Trim(value, `"`) {
					continue
				}
				inst := s.Metric.Get(signals.LabelInstance)
				if out[inst] == nil {
					out[inst] = map[string]string{}
				}
				out[inst][setting] = strconv.FormatFloat(s.F, 'f', -1, 64)
			}
		}
		return out
	}
}

// gaugeSettings turns gauges into settings named after the metric (minus
// prefix) or as renamed.
func gaugeSettings(prefix string, rename map[string]string) func(promql.Vector) map[string]map[string]string {
	return func(v promql.Vector) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, s := range v {
			name := s.Metric.Get("__name__")
			if r, ok := rename[name]; ok {
				name = r
			} else {
				name = strings.TrimPrefix(name, prefix)
			}
			inst := s.Metric.Get(signals.LabelInstance)
			if out[inst] == nil {
				out[inst] = map[string]string{}
			}
			out[inst][name] = strconv.FormatFloat(s.F, 'f', -1, 64)
		}
		return out
	}
}

// infoProbe reads an engine's info endpoint.
type infoProbe struct {
	path string
	// keys maps a JSON field of the response to a setting name.
	keys map[string]string
	// list is true when the fields sit in data[0] (OpenAI /v1/models).
	list bool
}

func builtinInfoProbes() map[string]infoProbe {
	return map[string]infoProbe{
		signals.EngineVLLM: {path: "/v1/models", list: true, keys: map[string]string{
			"id": "served_model_name", "max_model_len": "max_model_len",
		}},
		signals.EngineSGLang: {path: "/get_server_info", keys: map[string]string{
			"served_model_name": "served_model_name", "model_path": "model_path",
			"mem_fraction_static": "mem_fraction_static", "max_running_requests": "max_running_requests",
			"chunked_prefill_size": "chunked_prefill_size", "schedule_conservativeness": "schedule_conservativeness",
			"max_total_num_tokens": "max_total_num_tokens", "max_prefill_tokens": "max_prefill_tokens",
			"context_length": "context_length", "tp_size": "tp_size", "page_size": "page_size",
			"schedule_policy": "schedule_policy", "kv_cache_dtype": "kv_cache_dtype",
			"disable_radix_cache": "disable_radix_cache", "quantization": "quantization",
		}},
		signals.EngineTGI: {path: "/info", keys: map[string]string{
			"model_id": "served_model_name", "max_concurrent_requests": "max_concurrent_requests",
			"max_batch_total_tokens": "max_batch_total_tokens", "max_batch_prefill_tokens": "max_batch_prefill_tokens",
			"max_total_tokens": "max_total_tokens", "max_input_tokens": "max_input_tokens",
			"max_input_length": "max_input_tokens", "max_best_of": "max_best_of",
			"max_waiting_tokens": "max_waiting_tokens", "waiting_served_ratio": "waiting_served_ratio",
			"max_client_batch_size": "max_client_batch_size", "version": "version",
		}},
		// llama-server's /props: total_slots is --parallel.
		signals.EngineLlamaCpp: {path: "/props", keys: map[string]string{
			"model_path": "served_model_name", "total_slots": "n_parallel",
		}},
	}
}

// Prober reads engine settings from the servers' info endpoints. Results
// are cached per instance and refreshed once per interval.
type Prober struct {
	client   *http.Client
	interval time.Duration
	probes   map[string]infoProbe
	metrics  *Metrics

	mtx     sync.Mutex
	results map[string]probeResult
	running map[string]bool
	wg      sync.WaitGroup
}

type probeResult struct {
	at       time.Time
	settings map[string]string
	err      error
}

// NewProber builds a prober; timeout bounds one probe.
func NewProber(interval, timeout time.Duration, m *Metrics) *Prober {
	return &Prober{
		client:   &http.Client{Timeout: timeout},
		interval: interval,
		probes:   builtinInfoProbes(),
		metrics:  m,
		results:  map[string]probeResult{},
		running:  map[string]bool{},
	}
}

// Settings returns the last probe result of an instance.
func (p *Prober) Settings(instance string) map[string]string {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	return p.results[instance].settings
}

// Refresh starts a probe, in the background, of every instance whose last
// probe is older than the interval.
func (p *Prober) Refresh(ctx context.Context, now time.Time, targets map[string]ProbeTarget) {
	for inst, t := range targets {
		if _, ok := p.probes[t.Engine]; !ok {
			continue
		}
		p.mtx.Lock()
		r, seen := p.results[inst]
		due := !p.running[inst] && (!seen || now.Sub(r.at) >= p.interval)
		if due {
			p.running[inst] = true
		}
		p.mtx.Unlock()
		if !due {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			settings, err := p.Probe(ctx, t)
			p.mtx.Lock()
			defer p.mtx.Unlock()
			delete(p.running, inst)
			if err != nil {
				p.metrics.ProbeFailures.Inc()
				settings = r.settings
			}
			p.results[inst] = probeResult{at: now, settings: settings, err: err}
		}()
	}
}

// Wait blocks until every probe started by Refresh has finished.
func (p *Prober) Wait() { p.wg.Wait() }

// ProbeTarget is where and what to probe.
type ProbeTarget struct {
	// BaseURL is scheme://host:port of the server.
	BaseURL string
	Engine  string
}

// Probe reads one server's info endpoint now.
func (p *Prober) Probe(ctx context.Context, t ProbeTarget) (map[string]string, error) {
	probe, ok := p.probes[t.Engine]
	if !ok {
		return nil, fmt.Errorf("no info endpoint known for engine %s", t.Engine)
	}
	url := strings.TrimRight(t.BaseURL, "/") + probe.path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("probing %s: %w", url, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("probing %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("probing %s: HTTP %s", url, resp.Status)
	}
	var body map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("probing %s: decoding JSON: %w", url, err)
	}
	if probe.list {
		data, _ := body["data"].([]any)
		if len(data) == 0 {
			return nil, fmt.Errorf("probing %s: no models listed", url)
		}
		first, _ := data[0].(map[string]any)
		body = first
	}
	out := map[string]string{}
	keys := make([]string, 0, len(probe.keys))
	for k := range probe.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if s, ok := scalarString(body[k]); ok {
			out[probe.keys[k]] = s
		}
	}
	return out, nil
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, x != ""
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	default:
		return "", false
	}
}

// settingSignal derives a signal from an instance's settings, for what an
// engine reports only as configuration.
type settingSignal struct {
	name  string
	value func(engine string, s Settings) (float64, bool)
}

func settingSignals() []settingSignal {
	flag := func(s Settings, name string) (bool, bool) {
		v, ok := s[name]
		if !ok {
			return false, false
		}
		b, err := strconv.ParseBool(strings.ToLower(v.Value))
		return b, err == nil
	}
	return []settingSignal{
		{signals.KVCacheCapacity, func(engine string, s Settings) (float64, bool) {
			// vLLM reports its capacity only as label values.
			blocks, ok1 := s.Float("num_gpu_blocks")
			size, ok2 := s.Float("block_size")
			return blocks * size, ok1 && ok2
		}},
		{signals.MaxRunningRequests, func(engine string, s Settings) (float64, bool) {
			key := map[string]string{signals.EngineVLLM: "max_num_seqs", signals.EngineSGLang: "max_running_requests", signals.EngineTGI: "max_concurrent_requests",
				signals.EngineTRTLLM: "max_batch_size", signals.EngineLlamaCpp: "n_parallel"}[engine]
			if key == "" {
				return 0, false
			}
			return s.Float(key)
		}},
		{signals.PrefixCachingEnabled, func(engine string, s Settings) (float64, bool) {
			var on, ok bool
			switch engine {
			case signals.EngineVLLM:
				on, ok = flag(s, "enable_prefix_caching")
			case signals.EngineSGLang:
				on, ok = flag(s, "disable_radix_cache")
				on = !on
			}
			if !ok {
				return 0, false
			}
			if on {
				return 1, true
			}
			return 0, true
		}},
	}
}
