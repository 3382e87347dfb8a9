package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/internal/testutil"
)

func writeFleet(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fleet.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitCodes(t *testing.T) {
	good := writeFleet(t, "seed: 1\nservers:\n- {engine: vllm, listen: 127.0.0.1:18000, workload: {rate: 1}}\n")
	bad := writeFleet(t, "servers:\n- {engine: vllm, listen: 127.0.0.1:18000, workload: {rat: 1}}\n")
	cases := []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"--help"}, 0, "usage: llmsim", ""},
		{[]string{"replay"}, 2, "", "--config.file or --scenario is required"},
		{[]string{"--config.file", good, "--scenario", "healthy", "replay"}, 2, "", "not both"},
		{[]string{"--scenario", "no-such", "replay"}, 2, "", "no-such"},
		{[]string{"scenarios"}, 0, "vllm-b1-kv-pressure\t40m0s\tB1 on vllm-0 15m0s-40m0s\n", ""},
		{[]string{"--scenario", "b6-underused", "replay", "--duration", "30s", "--step", "30s", "--start", "2026-01-01T00:00:00Z"}, 0,
			`sglang:num_running_reqs{engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct",moe_ep_rank="0",pp_rank="0",tp_rank="0",instance="127.0.0.1:18211",job="llmsim"} `, ""},
		{[]string{"--config.file", bad, "replay"}, 2, "", "fleet.yml:2"},
		{[]string{"--config.file", "/nonexistent.yml", "replay"}, 2, "", "nonexistent.yml"},
		{[]string{"--config.file", good, "replay", "--step", "0s"}, 2, "", "step"},
		{[]string{"--config.file", good, "replay", "--duration", "1m", "--step", "30s", "--start", "2026-01-01T00:00:00Z", "--job", "sim"}, 0,
			`vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",instance="127.0.0.1:18000",job="sim"} 0 1767225600` + "\n", ""},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(t.Context(), c.args, &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstderr: %s", code, c.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), c.out) {
				t.Errorf("stdout lacks %q:\n%.500s", c.out, stdout.String())
			}
			if !strings.Contains(stderr.String(), c.err) {
				t.Errorf("stderr lacks %q:\n%s", c.err, stderr.String())
			}
		})
	}
}

func TestServe(t *testing.T) {
	addrs := []string{testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)}
	fleet := writeFleet(t, fmt.Sprintf(`seed: 1
servers:
- {engine: vllm, listen: %q, workload: {rate: 5}}
- {engine: sglang, listen: %q, workload: {rate: 5}}
- {engine: tgi, listen: %q, workload: {rate: 5}}
`, addrs[0], addrs[1], addrs[2]))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- runMain(ctx, []string{"--config.file", fleet, "serve", "--speed", "60", "--tick", "20ms"}, io.Discard, &stderr)
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	get := func(url string) (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	want := map[string]string{
		"http://" + addrs[0] + "/metrics":         "vllm:num_requests_running",
		"http://" + addrs[1] + "/get_server_info": "max_total_num_tokens",
		"http://" + addrs[2] + "/info":            "max_batch_total_tokens",
	}
	deadline := time.Now().Add(10 * time.Second)
	for url, w := range want {
		for {
			body, err := get(url)
			if err == nil && strings.Contains(body, w) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v %q", url, err, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Simulated time runs at 60x: within a few seconds the vLLM server has finished requests.
	for {
		body, _ := get("http://" + addrs[0] + "/metrics")
		if strings.Contains(body, `finished_reason="stop"`) && !strings.Contains(body, `finished_reason="stop",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no finished requests while serving")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}
