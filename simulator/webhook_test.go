package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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

func TestWebhookAppliesSignedChangesOnce(t *testing.T) {
	cfg, err := ParseFleet("f.yaml", []byte("servers:\n- {name: v, engine: vllm, listen: '127.0.0.1:18500', settings: {gpu_memory_utilization: 0.8}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fleet, err := NewFleet(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	h := fleet.WebhookHandler([]byte("s3cret"), func() time.Time { return now })
	before := fleet.Servers()[0].State().KVCapacityTokens
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"workflow_id":"w1","instance":"127.0.0.1:18500","operation":"apply","flag":"--gpu-memory-utilization","from":"0.8","to":"0.9","idempotency_key":"w1/canary/127.0.0.1:18500/apply"}`
	post := func(body, ts, sig string) int {
		req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(body))
		req.Header.Set(headerTimestamp, ts)
		req.Header.Set(headerSignature, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	tests := []struct {
		name, body, ts, sig string
		want                int
	}{
		{"bad signature", body, ts, sign("other", ts, body), 401},
		{"old timestamp", body, strconv.FormatInt(now.Add(-time.Hour).Unix(), 10), sign("s3cret", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10), body), 401},
		{"unknown instance", strings.Replace(body, "18500", "18999", 1), ts, sign("s3cret", ts, strings.Replace(body, "18500", "18999", 1)), 404},
		{"applied", body, ts, sign("s3cret", ts, body), 200},
	}
	for _, tc := range tests {
		if got := post(tc.body, tc.ts, tc.sig); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	st := fleet.Servers()[0].State()
	if st.Settings.GPUMemoryUtilization != 0.9 || st.KVCapacityTokens <= before {
		t.Errorf("after the change: utilization %g, capacity %d (was %d)", st.Settings.GPUMemoryUtilization, st.KVCapacityTokens, before)
	}
	// The same key again changes nothing, even with another value.
	again := strings.Replace(body, `"to":"0.9"`, `"to":"0.5"`, 1)
	if got := post(again, ts, sign("s3cret", ts, again)); got != 200 {
		t.Errorf("repeated key: status %d", got)
	}
	if got := fleet.Servers()[0].State().Settings.GPUMemoryUtilization; got != 0.9 {
		t.Errorf("a repeated idempotency key changed the setting to %g", got)
	}
}
