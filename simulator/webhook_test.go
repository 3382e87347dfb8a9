package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sign(secret, ts, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookFleet is one fleet behind a webhook signed with "s3cret", and a
// function that posts a body signed at now (or with the given signature).
func webhookFleet(t *testing.T, fleetYAML string) (*Fleet, time.Time, func(body, ts, sig string) (int, string)) {
	t.Helper()
	cfg, err := ParseFleet("f.yaml", []byte(fleetYAML))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fleet, err := NewFleet(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	h := fleet.WebhookHandler([]byte("s3cret"), func() time.Time { return now })
	post := func(body, ts, sig string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		req.Header.Set(headerTimestamp, ts)
		req.Header.Set(headerSignature, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	return fleet, now, post
}

func TestWebhookAppliesSignedChangesOnce(t *testing.T) {
	fleet, now, post := webhookFleet(t, "servers:\n- {name: v, engine: vllm, listen: '127.0.0.1:18500', settings: {gpu_memory_utilization: 0.8}}\n")
	before := fleet.Servers()[0].State().KVCapacityTokens
	ts := strconv.FormatInt(now.Unix(), 10)
	old := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	body := `{"workflow_id":"w1","instance":"127.0.0.1:18500","operation":"apply","flag":"--gpu-memory-utilization","from":"0.8","to":"0.9","idempotency_key":"w1/canary/127.0.0.1:18500/apply"}`
	future := strconv.FormatInt(now.Add(6*time.Minute).Unix(), 10)
	tampered := strings.Replace(body, `"to":"0.9"`, `"to":"0.95"`, 1)
	elsewhere := strings.Replace(body, "18500", "18999", 1)
	notANumber := strings.Replace(strings.Replace(body, `"to":"0.9"`, `"to":"lots"`, 1), "/apply", "/apply-2", 1)
	unknownOp := strings.Replace(body, `"operation":"apply"`, `"operation":"restart"`, 1)
	tests := []struct {
		name, body, ts, sig string
		want                int
		wantMsg             []string
	}{
		{"bad signature", body, ts, sign("other", ts, body), 401, nil},
		{"old timestamp", body, old, sign("s3cret", old, body), 401, nil},
		{"timestamp from the future", body, future, sign("s3cret", future, body), 401, nil},
		// A captured request replayed with a fresh timestamp: the
		// signature covers the old one.
		{"replayed with a new timestamp", body, ts, sign("s3cret", old, body), 401, nil},
		{"tampered body", tampered, ts, sign("s3cret", ts, body), 401, nil},
		{"no timestamp", body, "", sign("s3cret", "", body), 401, nil},
		{"signature without its scheme", body, ts, strings.TrimPrefix(sign("s3cret", ts, body), "sha256="), 401, nil},
		{"unknown instance", elsewhere, ts, sign("s3cret", ts, elsewhere), 404, []string{"127.0.0.1:18999"}},
		{"unknown operation", unknownOp, ts, sign("s3cret", ts, unknownOp), 400, []string{`"restart"`}},
		// The value does not fit the setting's type: the answer names both.
		{"value of the wrong type", notANumber, ts, sign("s3cret", ts, notANumber), 400, []string{"--gpu-memory-utilization", `"lots"`}},
		{"applied", body, ts, sign("s3cret", ts, body), 200, nil},
	}
	for _, tc := range tests {
		code, msg := post(tc.body, tc.ts, tc.sig)
		if code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, code, tc.want, msg)
		}
		for _, w := range tc.wantMsg {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: answer %q does not name %s", tc.name, msg, w)
			}
		}
	}
	st := fleet.Servers()[0].State()
	if st.Settings.GPUMemoryUtilization != 0.9 || st.KVCapacityTokens <= before {
		t.Errorf("after the change: utilization %g, capacity %d (was %d)", st.Settings.GPUMemoryUtilization, st.KVCapacityTokens, before)
	}
	// The same key again changes nothing, even with another value.
	again := strings.Replace(body, `"to":"0.9"`, `"to":"0.5"`, 1)
	if code, msg := post(again, ts, sign("s3cret", ts, again)); code != 200 {
		t.Errorf("repeated key: status %d (%s)", code, msg)
	}
	if got := fleet.Servers()[0].State().Settings.GPUMemoryUtilization; got != 0.9 {
		t.Errorf("a repeated idempotency key changed the setting to %g", got)
	}
	// The same signed request replayed within the window is the same
	// change: answered, not applied twice.
	if err := fleet.Servers()[0].UpdateSettings([]byte(`{"gpu_memory_utilization": 0.8}`)); err != nil {
		t.Fatal(err)
	}
	if code, msg := post(body, ts, sign("s3cret", ts, body)); code != 200 {
		t.Errorf("replayed request: status %d (%s)", code, msg)
	}
	if got := fleet.Servers()[0].State().Settings.GPUMemoryUtilization; got != 0.8 {
		t.Errorf("a replayed request was applied again: %g", got)
	}
}

func TestWebhookReadsCurrentValues(t *testing.T) {
	fleet, now, post := webhookFleet(t, `servers:
- {name: v, engine: vllm, listen: '127.0.0.1:18500', settings: {gpu_memory_utilization: 0.8}}
- {name: s, engine: sglang, listen: '127.0.0.1:18501'}
- {name: t, engine: tgi, listen: '127.0.0.1:18502'}
`)
	ts := strconv.FormatInt(now.Unix(), 10)
	signed := func(body string) (int, string) { return post(body, ts, sign("s3cret", ts, body)) }
	read := func(instance, flag string) string {
		return `{"workflow_id":"w1","stage":"canary","instance":"` + instance + `","operation":"read","engine":"vllm","model":"m","flag":"` + flag + `","from":"","to":"","idempotency_key":"w1/canary/` + instance + `/apply"}`
	}
	value := func(t *testing.T, instance, flag string) string {
		t.Helper()
		code, body := signed(read(instance, flag))
		if code != http.StatusOK {
			t.Fatalf("read %s on %s: status %d (%s)", flag, instance, code, body)
		}
		var got ReadResponse
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("read %s on %s: %v in %s", flag, instance, err, body)
		}
		if got.Instance != instance || got.Flag != flag {
			t.Errorf("read %s on %s: answer names %s on %s", flag, instance, got.Flag, got.Instance)
		}
		return got.Value
	}

	// Values as the flag would be written, engine defaults resolved.
	for _, tc := range []struct{ instance, flag, want string }{
		{"127.0.0.1:18500", "--gpu-memory-utilization", "0.8"},
		{"127.0.0.1:18500", "--max-num-seqs", "1024"},
		{"127.0.0.1:18500", "--enable-prefix-caching", "true"},
		{"127.0.0.1:18500", "--kv-cache-dtype", "auto"},
		{"127.0.0.1:18500", "--speculative-config", "0"},
		{"127.0.0.1:18501", "--mem-fraction-static", "0.832"},
		{"127.0.0.1:18501", "--disable-radix-cache", "false"},
		{"127.0.0.1:18501", "--schedule-conservativeness", "1"},
		{"127.0.0.1:18502", "--max-concurrent-requests", "128"},
		{"127.0.0.1:18502", "--kv-cache-dtype", "auto"},
	} {
		if got := value(t, tc.instance, tc.flag); got != tc.want {
			t.Errorf("read %s on %s = %q, want %q", tc.flag, tc.instance, got, tc.want)
		}
	}

	// A read changes nothing and is not recorded against its key: the
	// apply with the same key afterwards still applies.
	before := fleet.Servers()[0].State()
	if got := value(t, "127.0.0.1:18500", "--max-num-seqs"); got != "1024" {
		t.Fatalf("read before the apply = %q", got)
	}
	if after := fleet.Servers()[0].State(); after.Settings != before.Settings || after.Counters != before.Counters {
		t.Errorf("a read changed the server: %+v, then %+v", before, after)
	}
	apply := `{"workflow_id":"w1","stage":"canary","instance":"127.0.0.1:18500","operation":"apply","engine":"vllm","model":"m","flag":"--max-num-seqs","from":"1024","to":"256","idempotency_key":"w1/canary/127.0.0.1:18500/apply"}`
	if code, body := signed(apply); code != http.StatusOK {
		t.Fatalf("apply: status %d (%s)", code, body)
	}
	if got := value(t, "127.0.0.1:18500", "--max-num-seqs"); got != "256" {
		t.Errorf("read after the apply = %q, want 256", got)
	}

	code, body := signed(read("127.0.0.1:18999", "--max-num-seqs"))
	if code != http.StatusNotFound {
		t.Errorf("read on an unknown instance: status %d (%s), want 404", code, body)
	}
	// --max-running-requests is SGLang's, not vLLM's.
	code, body = signed(read("127.0.0.1:18500", "--max-running-requests"))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "--max-running-requests") || !strings.Contains(body, "--max-num-seqs") {
		t.Errorf("read of another engine's flag: status %d (%s), want 422 naming the flag and the readable ones", code, body)
	}
	r := read("127.0.0.1:18500", "--max-num-seqs")
	if code, body := post(r, ts, sign("other", ts, r)); code != http.StatusUnauthorized {
		t.Errorf("read with a bad signature: status %d (%s), want 401", code, body)
	}
}
