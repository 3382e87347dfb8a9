package simulator

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// bigFleet is n servers (80 % vLLM, 10 % SGLang, 10 % TGI) at 1 to 4 requests/s each.
func bigFleet(b *testing.B, n int) *FleetConfig {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("seed: 1\nservers:\n")
	engines := []string{"vllm", "vllm", "vllm", "vllm", "vllm", "vllm", "vllm", "vllm", "sglang", "tgi"}
	for i := range n {
		fmt.Fprintf(&sb, "- {engine: %s, listen: \"10.0.%d.%d:8000\", workload: {rate: %d, prompt_tokens: {mean: 1000, cv: 0.6}, output_tokens: {mean: 250, cv: 0.6}}}\n",
			engines[i%len(engines)], i/250, i%250, 1+i%4)
	}
	cfg, err := ParseFleet("bench.yaml", []byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkAdvance1000ServersHour simulates 1000 servers for one hour, sampled every 15 s.
func BenchmarkAdvance1000ServersHour(b *testing.B) {
	cfg := bigFleet(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		f, err := NewFleet(cfg, testStart)
		if err != nil {
			b.Fatal(err)
		}
		for at := time.Duration(0); at <= time.Hour; at += 15 * time.Second {
			f.Advance(testStart.Add(at))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/sim-hour")
}

// BenchmarkReplay1000ServersHour writes the OpenMetrics replay of 1000 servers for one hour
// at a 60 s step.
func BenchmarkReplay1000ServersHour(b *testing.B) {
	cfg := bigFleet(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		cw := &countWriter{}
		if err := Replay(b.Context(), cfg, ReplayOptions{Start: testStart, Duration: time.Hour, Step: time.Minute, Job: "llm", TempDir: b.TempDir()}, cw); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(cw.n)/1e6, "MB-out")
	}
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/sim-hour")
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countWriter)(nil)
