package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testRequest = Request{
	WorkflowID: "wf-1", Stage: "stage-1", Instance: "10.0.0.1:8000", Operation: OperationApply,
	Engine: "vllm", Model: "llama", Flag: "max-num-seqs", From: "256", To: "128",
	IdempotencyKey: IdempotencyKey("wf-1", "stage-1", "10.0.0.1:8000", OperationApply, 1, 0),
}

func TestIdempotencyKey(t *testing.T) {
	cases := []struct {
		op             Operation
		round, attempt int
		want           string
	}{
		{OperationApply, 1, 0, "wf/stage-1/i/apply"},
		{OperationApply, 3, 2, "wf/stage-1/i/apply"},
		{OperationRollback, 1, 0, "wf/stage-1/i/rollback"},
		{OperationRollback, 2, 0, "wf/stage-1/i/rollback-2"},
		{OperationRollback, 1, 1, "wf/stage-1/i/rollback-1.2"},
		{OperationRollback, 2, 3, "wf/stage-1/i/rollback-2.4"},
	}
	for _, tc := range cases {
		if got := IdempotencyKey("wf", "stage-1", "i", tc.op, tc.round, tc.attempt); got != tc.want {
			t.Errorf("IdempotencyKey(%s, %d, %d) = %q, want %q", tc.op, tc.round, tc.attempt, got, tc.want)
		}
	}
}

func TestWebhookExecutor(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Unix(1_800_000_000, 0)
	type call struct {
		body []byte
		hdr  http.Header
	}
	cases := []struct {
		name     string
		statuses []int
		wantErr  string
		calls    int
		sleeps   []time.Duration
	}{
		{"ok", []int{200}, "", 1, nil},
		{"accepted", []int{202}, "", 1, nil},
		{"retried 5xx then ok", []int{503, 500, 204}, "", 3, []time.Duration{time.Second, 2 * time.Second}},
		{"429 retried", []int{429, 200}, "", 2, []time.Duration{time.Second}},
		{"4xx not retried", []int{400}, "status 400", 1, nil},
		{"retries exhausted", []int{500, 500, 500, 500}, "status 500", 4, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var calls []call
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				n := len(calls)
				calls = append(calls, call{b, r.Header.Clone()})
				mu.Unlock()
				w.WriteHeader(tc.statuses[n])
				io.WriteString(w, "msg")
			}))
			defer srv.Close()
			var sleeps []time.Duration
			e, err := NewWebhookExecutor(WebhookOptions{
				URL: srv.URL, Secret: secret, Now: func() time.Time { return now }, Timeout: 5 * time.Second,
				Sleep: func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			err = e.Execute(context.Background(), testRequest)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if len(calls) != tc.calls {
				t.Fatalf("%d calls, want %d", len(calls), tc.calls)
			}
			if len(sleeps) != len(tc.sleeps) {
				t.Fatalf("slept %v, want %v", sleeps, tc.sleeps)
			}
			for i := range sleeps {
				if sleeps[i] != tc.sleeps[i] {
					t.Fatalf("slept %v, want %v", sleeps, tc.sleeps)
				}
			}
			for _, c := range calls {
				ts := c.hdr.Get(HeaderTimestamp)
				if ts != "1800000000" {
					t.Fatalf("timestamp header %q", ts)
				}
				if got, want := c.hdr.Get(HeaderSignature), Sign(secret, ts, c.body); got != want || !strings.HasPrefix(got, "sha256=") {
					t.Fatalf("signature %q, want %q", got, want)
				}
				if Sign([]byte("other"), ts, c.body) == c.hdr.Get(HeaderSignature) {
					t.Fatal("signature does not depend on the secret")
				}
				if c.hdr.Get(HeaderIdempotencyKey) != testRequest.IdempotencyKey {
					t.Fatalf("idempotency header %q", c.hdr.Get(HeaderIdempotencyKey))
				}
				var got Request
				if err := json.Unmarshal(c.body, &got); err != nil || got != testRequest {
					t.Fatalf("body %s: %+v, %v", c.body, got, err)
				}
			}
		})
	}
}

func TestWebhookExecutorTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	e, err := NewWebhookExecutor(WebhookOptions{
		URL: srv.URL, Secret: []byte("k"), Timeout: 50 * time.Millisecond, Retries: -1,
		Sleep: func(context.Context, time.Duration) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Execute(context.Background(), testRequest); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if _, err := NewWebhookExecutor(WebhookOptions{URL: srv.URL}); err == nil {
		t.Fatal("accepted a webhook without secret")
	}
}

func TestExecExecutor(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "apply.sh")
	err := os.WriteFile(script, []byte(`#!/bin/sh
out="$1"; shift
{ for a in "$@"; do echo "arg=$a"; done
  echo "env=$PERFAGENT_FLAG|$PERFAGENT_FROM|$PERFAGENT_TO|$PERFAGENT_INSTANCE|$PERFAGENT_IDEMPOTENCY_KEY|$PERFAGENT_OPERATION|$EXTRA"; } >> "$out"
[ "$PERFAGENT_TO" != "fail" ] || { echo "cannot set $PERFAGENT_FLAG" >&2; exit 3; }
`), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExecExecutor(ExecOptions{
		Argv: []string{script, out, "--{{.Flag}}={{.To}}", "{{.Instance}}", "a b; rm -rf /"},
		Env:  []string{"EXTRA=x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Execute(context.Background(), testRequest); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "arg=--max-num-seqs=128\narg=10.0.0.1:8000\narg=a b; rm -rf /\nenv=max-num-seqs|256|128|10.0.0.1:8000|wf-1/stage-1/10.0.0.1:8000/apply|apply|x\n"
	if string(b) != want {
		t.Fatalf("script saw\n%s\nwant\n%s", b, want)
	}
	bad := testRequest
	bad.To = "fail"
	if err := e.Execute(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "cannot set max-num-seqs") {
		t.Fatalf("failing script: err = %v", err)
	}
	if _, err := NewExecExecutor(ExecOptions{Argv: []string{"{{.Nope"}}); err == nil {
		t.Fatal("accepted a broken template")
	}
	e, err = NewExecExecutor(ExecOptions{Argv: []string{"{{.Missing}}"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Execute(context.Background(), testRequest); err == nil {
		t.Fatal("rendered an unknown field")
	}
}

func TestWebhookRead(t *testing.T) {
	secret := []byte("s3cret")
	var got Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ts := r.Header.Get(HeaderTimestamp)
		if r.Header.Get(HeaderSignature) != Sign(secret, ts, b) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		_ = json.Unmarshal(b, &got)
		switch got.Instance {
		case "10.0.0.1:8000":
			io.WriteString(w, `{"instance":"10.0.0.1:8000","flag":"max-num-seqs","value":"256"}`)
		case "10.0.0.2:8000":
			io.WriteString(w, `{"instance":"10.0.0.2:8000"}`)
		default:
			http.Error(w, "no such instance", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	opts := WebhookOptions{URL: srv.URL, Secret: secret, Retries: -1}
	off, err := NewWebhookExecutor(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Read(context.Background(), testRequest); !errors.Is(err, ErrReadUnsupported) {
		t.Fatalf("read without read: true: err = %v", err)
	}
	opts.Read = true
	e, err := NewWebhookExecutor(opts)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Read(context.Background(), testRequest)
	if err != nil || v != "256" {
		t.Fatalf("read = %q, %v", v, err)
	}
	if got.Operation != OperationRead || got.To != "" || got.From != "" || got.IdempotencyKey != "" || got.Flag != "max-num-seqs" {
		t.Fatalf("read request %+v", got)
	}
	for inst, want := range map[string]string{"10.0.0.2:8000": "answer has no value", "10.0.0.9:8000": "status 404"} {
		r := testRequest
		r.Instance = inst
		if _, err := e.Read(context.Background(), r); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("read on %s: err = %v, want %q", inst, err, want)
		}
	}
}

func TestExecRead(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "read.sh")
	err := os.WriteFile(script, []byte(`#!/bin/sh
[ "$PERFAGENT_OPERATION" = read ] || exit 9
case "$1" in
  10.0.0.1:8000) echo 256; echo ignored ;;
  10.0.0.2:8000) echo ;;
  *) echo "unknown instance $1" >&2; exit 2 ;;
esac
`), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	none, err := NewExecExecutor(ExecOptions{Argv: []string{"/bin/false"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Read(context.Background(), testRequest); !errors.Is(err, ErrReadUnsupported) {
		t.Fatalf("read without read_argv: err = %v", err)
	}
	e, err := NewExecExecutor(ExecOptions{Argv: []string{"/bin/false"}, ReadArgv: []string{script, "{{.Instance}}"}})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.Read(context.Background(), testRequest); err != nil || v != "256" {
		t.Fatalf("read = %q, %v", v, err)
	}
	for inst, want := range map[string]string{"10.0.0.2:8000": "printed no value", "10.0.0.9:8000": "unknown instance 10.0.0.9:8000"} {
		r := testRequest
		r.Instance = inst
		if _, err := e.Read(context.Background(), r); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("read on %s: err = %v, want %q", inst, err, want)
		}
	}
}
