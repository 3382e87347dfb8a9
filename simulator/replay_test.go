package simulator

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func replayHealthy(t *testing.T, d, step time.Duration) []byte {
	t.Helper()
	sc, err := LoadScenario("healthy")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	opts := ReplayOptions{Start: testStart, Duration: d, Step: step, Job: "llm", TempDir: t.TempDir()}
	if err := Replay(t.Context(), sc.Fleet, opts, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReplayOpenMetricsStructure(t *testing.T) {
	out := replayHealthy(t, 5*time.Minute, 15*time.Second)
	if !bytes.HasSuffix(out, []byte("# EOF\n")) {
		t.Fatal("output does not end with # EOF")
	}
	families := map[string]bool{}
	current := ""
	series := map[string]string{} // series -> last timestamp seen
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if families[f[2]] {
				t.Fatalf("family %s appears twice (interleaved)", f[2])
			}
			families[f[2]] = true
			current = f[2]
			if f[3] == "counter" && strings.HasSuffix(f[2], "_total") {
				t.Errorf("counter family %s must be named without _total", f[2])
			}
		case strings.HasPrefix(line, "#"):
		default:
			if !strings.HasPrefix(line, current) {
				t.Fatalf("sample %q outside its family %s", line, current)
			}
			if !strings.Contains(line, `instance="127.0.0.1:181`) || !strings.Contains(line, `job="llm"`) {
				t.Fatalf("sample without instance/job: %q", line)
			}
			i := strings.LastIndexByte(line, ' ')
			ts := line[i+1:]
			if len(strings.Split(ts, ".")[0]) != 10 {
				t.Fatalf("timestamp %q is not in seconds", ts)
			}
			key := line[:strings.LastIndexByte(line[:i], ' ')]
			if prev, ok := series[key]; ok && prev >= ts {
				t.Fatalf("series %s not in time order", key)
			}
			series[key] = ts
		}
	}
	for _, want := range []string{"vllm:num_preemptions", "vllm:kv_cache_usage_perc", "sglang:token_usage", "tgi_request_count", "tgi_queue_size"} {
		if !families[want] {
			t.Errorf("family %s missing", want)
		}
	}
}

func TestReplayLoadsIntoTSDB(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "replay.om")
	if err := os.WriteFile(in, replayHealthy(t, 10*time.Minute, 15*time.Second), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", in, filepath.Join(dir, "tsdb")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool rejected the replay: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, promtool, "tsdb", "list", filepath.Join(dir, "tsdb")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool tsdb list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "1767225600000") {
		t.Errorf("block does not start at the replay start:\n%s", out)
	}
}
