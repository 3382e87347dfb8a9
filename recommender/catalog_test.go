package recommender

import (
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

func TestEmbeddedCatalog(t *testing.T) {
	c, err := EmbeddedCatalog()
	if err != nil {
		t.Fatal(err)
	}
	// Ids the rules engineer uses (rules/builtin/bottlenecks.yml) and the issue names.
	for _, id := range []string{
		"raise_gpu_memory_utilization", "lower_max_num_seqs", "raise_max_num_seqs", "fp8_kv_cache",
		"raise_max_num_batched_tokens", "lower_max_num_batched_tokens", "long_prefill_threshold",
		"enable_prefix_caching", "prefix_aware_routing", "scale_out", "scale_in",
		"raise_schedule_conservativeness", "lower_schedule_conservativeness", "raise_mem_fraction_static",
		"raise_max_concurrent_requests", "raise_max_running_requests", "load_aware_routing", "investigate_errors",
	} {
		if _, ok := c.Lookup(id); !ok {
			t.Errorf("catalog lacks %q", id)
		}
	}
	for _, d := range c.Definitions {
		if _, ok := strategies[d.ID]; !ok {
			t.Errorf("%s has no strategy", d.ID)
		}
	}
	if len(strategies) != len(c.Definitions) {
		t.Errorf("%d strategies for %d definitions", len(strategies), len(c.Definitions))
	}
	// Real flags per engine, as the issue names them.
	for _, tc := range []struct{ id, engine, flag string }{
		{"raise_gpu_memory_utilization", signals.EngineVLLM, "--gpu-memory-utilization"},
		{"lower_max_num_seqs", signals.EngineVLLM, "--max-num-seqs"},
		{"lower_max_num_seqs", signals.EngineSGLang, "--max-running-requests"},
		{"raise_max_num_batched_tokens", signals.EngineVLLM, "--max-num-batched-tokens"},
		{"raise_max_num_batched_tokens", signals.EngineSGLang, "--chunked-prefill-size"},
		{"raise_max_num_batched_tokens", signals.EngineTGI, "--max-batch-prefill-tokens"},
		{"fp8_kv_cache", signals.EngineSGLang, "--kv-cache-dtype"},
		{"long_prefill_threshold", signals.EngineVLLM, "--long-prefill-token-threshold"},
		{"enable_prefix_caching", signals.EngineVLLM, "--enable-prefix-caching"},
		{"raise_mem_fraction_static", signals.EngineSGLang, "--mem-fraction-static"},
		{"raise_schedule_conservativeness", signals.EngineSGLang, "--schedule-conservativeness"},
		{"raise_max_concurrent_requests", signals.EngineTGI, "--max-concurrent-requests"},
	} {
		d, _ := c.Lookup(tc.id)
		if d == nil || d.Engines[tc.engine].Flag != tc.flag {
			t.Errorf("%s on %s: want flag %s", tc.id, tc.engine, tc.flag)
		}
	}
	if got := c.TriageRank("B9"); got != 0 {
		t.Errorf("B9 must come first in the triage order, got %d", got)
	}
	if c.TriageRank("B1") > c.TriageRank("B3") || c.TriageRank("B3") > c.TriageRank("B5") || c.TriageRank("B2") > c.TriageRank("B6") {
		t.Errorf("triage order breaks the one in docs/bottlenecks.md: %v", c.Triage)
	}
}

func TestParseCatalogErrors(t *testing.T) {
	const bad = `triage: [B1, B2]
recommendations:
  - id: a
    summary: s
    kind: flag
    bottlenecks: [B1, B7]
    risk: r
    colour: red
    engines:
      vllm: {flag: --x, setting: x, direction: sideways}
      sglang: {not_applicable: "no"}
      tgi: {not_applicable: "no"}
      llamacpp: {not_applicable: "no"}
  - id: b
    summary: s
    kind: replicas
    bottlenecks: [B2]
    risk: r
    engines:
      vllm: {direction: raise}
`
	_, errs := ParseCatalog("bad.yml", []byte(bad))
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	want := []string{
		`bad.yml:8:5: unknown field "colour" in recommendation (allowed: id, summary, kind, bottlenecks, risk, engines)`,
		`bad.yml:6:23: recommendation "a": bottleneck "B7" is not in the triage order`,
		`bad.yml:10:48: recommendation "a": unknown direction "sideways" (allowed: raise, lower, set)`,
		`bad.yml:13:7: recommendation "a": unknown engine "llamacpp" (known: sglang, tgi, vllm)`,
		`bad.yml:20:7: recommendation "b": engine "sglang" not described (give its action or not_applicable)`,
		`bad.yml:20:7: recommendation "b": engine "tgi" not described (give its action or not_applicable)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, errs := ParseCatalog("x.yml", []byte("a: [")); len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "x.yml: parsing catalog") {
		t.Errorf("syntax error: %v", errs)
	}
}

// TestDocsListCatalog checks every id docs/recommendations.md lists exists,
// and every catalog id is documented.
func TestDocsListCatalog(t *testing.T) {
	b, err := os.ReadFile("../docs/recommendations.md")
	if err != nil {
		t.Fatal(err)
	}
	c, err := EmbeddedCatalog()
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Catalog\n")
	if !ok {
		t.Fatal("docs/recommendations.md has no Catalog section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	re := regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\|")
	var listed []string
	for _, m := range re.FindAllStringSubmatch(section, -1) {
		listed = append(listed, m[1])
		if _, ok := c.Lookup(m[1]); !ok {
			t.Errorf("docs list %q, not in the catalog", m[1])
		}
	}
	for _, d := range c.Definitions {
		if !slices.Contains(listed, d.ID) {
			t.Errorf("catalog id %q is not documented", d.ID)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := config.DefaultRecommenderConfig()
	if errs := cfg.Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	cfg.Objectives.ITLP95Seconds = 0
	cfg.Memory.MaxFraction = 1.2
	cfg.Memory.ReservedBytes = map[string]float64{"llamacpp": 1}
	cfg.Models = []config.ModelConfig{{Name: "m", Layers: 32, KVHeads: 8, HeadDim: 128, DTypeBytes: 2}, {Name: "m", Layers: 0, KVHeads: 8, HeadDim: 128, DTypeBytes: 2}}
	var got []string
	for _, err := range cfg.Validate() {
		var fe *config.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("%v is not a *config.FieldError", err)
		}
		got = append(got, fe.Path)
	}
	want := []string{"recommender.objectives.itl_p95_seconds", "recommender.memory.max_fraction", "recommender.memory.reserved_bytes.llamacpp", "recommender.models[1].name", "recommender.models[1].layers"}
	if !slices.Equal(got, want) {
		t.Errorf("paths %v, want %v", got, want)
	}
}

func TestNewRejectsIDWithoutStrategy(t *testing.T) {
	const doc = `triage: [B1]
recommendations:
  - id: teleport_weights
    summary: s
    kind: manual
    bottlenecks: [B1]
    risk: r
    engines:
      vllm: {note: n}
      sglang: {note: n}
      tgi: {not_applicable: "no"}
`
	c, errs := ParseCatalog("x.yml", []byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if _, err := New(Options{Catalog: c}); !errors.Is(err, ErrNoStrategy) {
		t.Errorf("got %v, want ErrNoStrategy", err)
	}
}

// TestBuiltinRulesUseCatalog checks that every recommendation id the
// built-in bottleneck rules name exists and addresses the rule's
// bottleneck.
func TestBuiltinRulesUseCatalog(t *testing.T) {
	b, err := os.ReadFile("../rules/builtin/bottlenecks.yml")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no built-in rules")
	}
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	c, err := EmbeddedCatalog()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rec := r.Annotations["recommend"]
			if rec == "" {
				continue
			}
			for id := range strings.SplitSeq(rec, ",") {
				n++
				d, ok := c.Lookup(strings.TrimSpace(id))
				if !ok {
					t.Errorf("%s recommends %q, not in the catalog", r.Alert, id)
					continue
				}
				if !slices.Contains(d.Bottlenecks, r.Labels["bottleneck"]) {
					t.Errorf("%s (%s) recommends %q, which does not address it", r.Alert, r.Labels["bottleneck"], id)
				}
			}
		}
	}
	if n == 0 {
		t.Error("no recommend annotations found")
	}
}
