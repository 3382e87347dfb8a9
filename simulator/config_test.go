package simulator

import (
	"strings"
	"testing"
	"time"
)

func TestLoadFleetGood(t *testing.T) {
	cfg, err := LoadFleet("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Servers[1].Name; got != "sglang-1" {
		t.Errorf("default name = %q, want sglang-1", got)
	}
	w := cfg.Servers[1].Workload
	if w.PromptTokens.Mean != 512 || w.OutputTokens.Mean != 256 || w.MaxTokens != 1024 || time.Duration(w.Timeout) != 10*time.Minute {
		t.Errorf("workload defaults not applied: %+v", w)
	}
	if g := cfg.Servers[0].GPU; g.MemoryGiB != 80 || g.BandwidthGBps != 3350 || g.TFLOPS != 989 {
		t.Errorf("GPU defaults not applied: %+v", g)
	}
	if len(cfg.Servers[0].Events) != 2 || cfg.Servers[0].Events[0].Settings == nil {
		t.Errorf("events not decoded: %+v", cfg.Servers[0].Events)
	}
	if len(cfg.Truth) != 1 || time.Duration(cfg.Truth[0].To) != 10*time.Minute {
		t.Errorf("truth not decoded: %+v", cfg.Truth)
	}
}

func TestLoadFleetErrors(t *testing.T) {
	cases := []struct {
		file string
		want []string
	}{
		{"unknown-field.bad.yml", []string{"testdata/unknown-field.bad.yml:6: field ratee not found in type simulator.Workload"}},
		{"bad-values.bad.yml", []string{
			"testdata/bad-values.bad.yml:5: servers.0.settings.gpu_memory_utilization: must be in (0, 1], got 1.5",
			"testdata/bad-values.bad.yml:6: servers.0.settings.block_size: must be one of 1, 8, 16, 32, 64, 128, got 7",
			"testdata/bad-values.bad.yml:8: servers.0.workload.rate: must be a number in [0, 10000]",
			`testdata/bad-values.bad.yml:9: invalid duration "10x"`,
		}},
		{"wrong-engine-flag.bad.yml", []string{"testdata/wrong-engine-flag.bad.yml:5: servers.0.settings.max_num_seqs: not a sglang setting"}},
		{"bad-event.bad.yml", []string{
			"testdata/bad-event.bad.yml:8: servers.0.events.0.workload.burst: unknown field",
			"testdata/bad-event.bad.yml:11: servers.0.events.1.settings.max_concurrent_requests: must not be negative",
		}},
		{"no-kv-memory.bad.yml", []string{"testdata/no-kv-memory.bad.yml:2: servers.0.settings.gpu_memory_utilization: no memory left for the KV cache"}},
		{"bad-truth.bad.yml", []string{
			`testdata/bad-truth.bad.yml:5: servers.1.name: duplicate server name "x"`,
			`testdata/bad-truth.bad.yml:6: servers.1.engine: must be vllm, sglang or tgi, got "nginx"`,
			`testdata/bad-truth.bad.yml:9: truth.0.bottleneck: must be one of B1..B13, got "B14"`,
			`testdata/bad-truth.bad.yml:9: truth.0.server: unknown server "y"`,
			"testdata/bad-truth.bad.yml:9: truth.0.to: must be after from",
			`testdata/bad-truth.bad.yml:10: truth.1.from_event: must be one of first_preemption, first_retraction, sustained_retraction, cap_bound, got "first_oom"`,
			"testdata/bad-truth.bad.yml:11: truth.2.from: set from or from_event, not both",
		}},
		{"bad-lever.bad.yml", []string{
			"testdata/bad-lever.bad.yml:6: truth.0.lever.flag: set flag and value together, or neither",
			"testdata/bad-lever.bad.yml:7: truth.1.lever.flag: is not a vllm flag",
			"testdata/bad-lever.bad.yml:8: truth.2.lever.id: is required",
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			_, err := LoadFleet("testdata/" + c.file)
			if err == nil {
				t.Fatal("want an error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(c.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(c.want), err)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestParseFleetRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "servers: [", "servers: 3", "- a\n- b"} {
		if _, err := ParseFleet("x.yml", []byte(in)); err == nil {
			t.Errorf("ParseFleet(%q) succeeded", in)
		} else if !strings.HasPrefix(err.Error(), "x.yml") {
			t.Errorf("error %q does not name the file", err)
		}
	}
}

func TestCapacityFromMemory(t *testing.T) {
	m := ModelConfig{}
	m.defaults()
	g := GPUConfig{}
	g.defaults()
	cases := []struct {
		name   string
		engine Engine
		s      Settings
		tokens int
	}{
		// (80 GiB x 0.9 - 8.03e9 x 2 B - 4 GiB) / (2 x 32 x 8 x 128 x 2 B x 16) = 27157 blocks.
		{"vllm default", EngineVLLM, Settings{}, 27157 * 16},
		{"vllm util 0.95", EngineVLLM, Settings{GPUMemoryUtilization: 0.95}, 29205 * 16},
		{"vllm fp8 kv", EngineVLLM, Settings{KVCacheDtype: "fp8"}, 54315 * 16},
		// (80 GiB x 0.85 - 16.06e9 B) / 131072 B.
		{"sglang 0.85", EngineSGLang, Settings{MemFractionStatic: 0.85}, 434527},
		// (80 GiB x 0.85 - 16.06e9 B) / 65536 B.
		{"sglang 0.85 fp8 kv", EngineSGLang, Settings{MemFractionStatic: 0.85, KVCacheDtype: "fp8_e4m3"}, 869055},
		// (80 GiB - 16.06e9 B - 4 GiB) / 131072 B.
		{"tgi", EngineTGI, Settings{}, 500063},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := resolve(c.engine, c.s, m, g)
			if err != nil {
				t.Fatal(err.msg)
			}
			if p.kvTokens != c.tokens {
				t.Errorf("KV tokens = %d, want %d", p.kvTokens, c.tokens)
			}
		})
	}
}

func TestDemoFleet(t *testing.T) {
	cfg, err := LoadFleet("../examples/demo/fleet.yml")
	if err != nil {
		t.Fatal(err)
	}
	runs := runFleet(t, cfg, 20*time.Minute)
	for name, ss := range runs {
		w := ss.window(2*time.Minute, 20*time.Minute)
		// fleet.yml puts one vLLM and one SGLang server under KV-cache
		// pressure, so the demo shows a bottleneck on each engine.
		if name == "vllm-2" || name == "sglang-0" {
			if err := symptoms["B1"](ss[len(ss)-1], w, nil); err != nil {
				t.Errorf("%s: %v\n%s", name, err, w)
			}
			continue
		}
		if err := healthy(ss[len(ss)-1], w); err != nil {
			t.Errorf("%s: %v\n%s", name, err, w)
		}
	}
}

func TestNewFleetValidatesConfigBuiltInCode(t *testing.T) {
	cfg := &FleetConfig{Servers: []ServerConfig{{Engine: EngineVLLM, Listen: "127.0.0.1:18000", Workload: Workload{Rate: 1}}}}
	f, err := NewFleet(cfg, testStart)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Servers()[0].State().KVCapacityTokens; got != 27157*16 {
		t.Errorf("KV capacity %d: defaults not applied", got)
	}
	if cfg.Servers[0].Model.Layers != 0 {
		t.Error("NewFleet modified the caller's config")
	}
	bad := &FleetConfig{Servers: []ServerConfig{{Engine: EngineVLLM, Listen: "127.0.0.1:18000", Settings: Settings{GPUMemoryUtilization: 3}}}}
	if _, err := NewFleet(bad, testStart); err == nil || !strings.Contains(err.Error(), "gpu_memory_utilization") {
		t.Errorf("want a gpu_memory_utilization error, got %v", err)
	}
}
