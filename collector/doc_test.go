package collector

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/signals"
)

var update = flag.Bool("update", false, "rewrite golden files and generated docs")

// TestSignalsDoc keeps docs/signals.md equal to what the catalog and the
// built-in profiles say; run with -update after changing either.
func TestSignalsDoc(t *testing.T) {
	profs, errs := LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := renderSignalsDoc(profs)
	const path = "../docs/signals.md"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./collector -run TestSignalsDoc -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s is out of date with the signal catalog or the profiles; run go test ./collector -run TestSignalsDoc -update", path)
	}
}

// fromSettings says, per signal and engine, which settings the collector
// derives a signal from (settingSignals).
var fromSettings = map[string]map[string]string{
	signals.KVCacheCapacity: {signals.EngineVLLM: "`num_gpu_blocks × block_size`, label values of `vllm:cache_config_info`"},
	signals.MaxRunningRequests: {
		signals.EngineVLLM:     "`max_num_seqs` (configuration only: vLLM does not export it)",
		signals.EngineSGLang:   "`max_running_requests` (`/get_server_info`)",
		signals.EngineTGI:      "`max_concurrent_requests` (`/info`)",
		signals.EngineTRTLLM:   "`max_batch_size`, `nv_trt_llm_request_metrics{request_type=\"max\"}`",
		signals.EngineLlamaCpp: "`n_parallel`, `total_slots` of `/props`",
	},
	signals.PrefixCachingEnabled: {
		signals.EngineVLLM:   "`enable_prefix_caching`, a label of `vllm:cache_config_info`",
		signals.EngineSGLang: "not `disable_radix_cache` (`/get_server_info`)",
	},
}

func renderSignalsDoc(profs []*Profile) string {
	var b strings.Builder
	b.WriteString(`# Signals

Generated from the signal catalog (signals/signals.go) and the built-in
engine profiles (collector/profiles/*.yml) by
` + "`go test ./collector -run TestSignalsDoc -update`" + `; do not edit by hand.

Every signal is one series per model server with the labels ` + "`instance`" + `
(the server's address), ` + "`engine`" + ` and ` + "`model`" + `; latency
signals add ` + "`quantile`" + ` (0.5, 0.95, 0.99): one rule per quantile, differing
only in the first argument of ` + "`histogram_quantile`" + ` (the 0.5 rule is
shown). Ranges are written ` + "`[1m]`" + ` and replaced by ` + "`collector.rate_window`" + `.
A signal of an instance that is not in ` + "`llm_instance_info`" + ` in the same
cycle is dropped, and a NaN value (nothing observed in the window) is left out.
TGI and llama.cpp have no model label: ` + "`model`" + ` comes from the configuration,
TGI's ` + "`/info`" + ` (` + "`model_id`" + `) or llama.cpp's ` + "`/props`" + ` (` + "`model_path`" + `); for
TensorRT-LLM it is the Triton model's name. On ` + "`/metrics`" + ` signals are gauges, except the
latency signals, which are untyped: ` + "`promtool check metrics`" + ` reserves the
` + "`quantile`" + ` label for summaries, and Prometheus's own ` + "`/federate`" + ` exposes
recorded series the same way.

`)
	b.WriteString("| signal | unit | meaning |")
	for _, p := range profs {
		fmt.Fprintf(&b, " %s |", p.Engine)
	}
	b.WriteString("\n|---|---|---|" + strings.Repeat("---|", len(profs)) + "\n")
	for _, s := range signals.All() {
		fmt.Fprintf(&b, "| `%s` | %s | %s |", s.Name, s.Unit, s.Help)
		for _, p := range profs {
			expr := ""
			for _, r := range p.Rules {
				if r.Record == s.Name {
					expr = r.Expr.String()
					break
				}
			}
			switch derived := fromSettings[s.Name][p.Engine]; {
			case expr != "":
				fmt.Fprintf(&b, " `%s` |", strings.ReplaceAll(expr, "|", `\|`))
			case derived != "":
				fmt.Fprintf(&b, " from settings: %s |", derived)
			default:
				b.WriteString(" not exposed by this engine |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
