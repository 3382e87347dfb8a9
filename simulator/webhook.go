package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Headers of a signed change request, as the agent's webhook executor
// sends them: the signature is "sha256=" and the hex HMAC-SHA256 of
// "<timestamp>.<body>".
const (
	headerSignature = "X-PerfAgent-Signature"
	headerTimestamp = "X-PerfAgent-Timestamp"
)

// maxClockSkew bounds how old or new a signed request may be.
const maxClockSkew = 5 * time.Minute

// ChangeRequest is the part of a change or read request the simulator
// needs; the agent's other fields (workflow_id, stage, engine, model, from,
// unit) are ignored.
type ChangeRequest struct {
	Instance       string `json:"instance"`
	Operation      string `json:"operation"`
	Flag           string `json:"flag"`
	To             string `json:"to"`
	IdempotencyKey string `json:"idempotency_key"`
}

// Operations of a change request.
const (
	opApply    = "apply"
	opRollback = "rollback"
	opRead     = "read"
)

// ReadResponse answers a read: the instance's current value of the flag.
type ReadResponse struct {
	Instance string `json:"instance"`
	Flag     string `json:"flag"`
	Value    string `json:"value"`
}

// WebhookHandler receives signed engine-setting changes for the fleet, as
// a deployment system would: it checks the signature and its age, then
// changes the flag on the server whose listen address is the request's
// instance, as a restart with the new flag would. A repeated idempotency
// key is answered without changing anything again. Operation "read"
// answers the server's current value of the flag (a ReadResponse) and
// changes and records nothing. now is the clock the timestamps are
// checked against.
func (f *Fleet) WebhookHandler(secret []byte, now func() time.Time) http.Handler {
	var (
		mu   sync.Mutex
		done = map[string]bool{}
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a signed change request", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := verify(secret, r.Header.Get(headerTimestamp), r.Header.Get(headerSignature), body, now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var req ChangeRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "body is not a change request: "+err.Error(), http.StatusBadRequest)
			return
		}
		switch req.Operation {
		case opApply, opRollback, opRead:
		default:
			http.Error(w, fmt.Sprintf("operation %q is not one of %s, %s, %s", req.Operation, opApply, opRollback, opRead), http.StatusBadRequest)
			return
		}
		s := f.serverAt(req.Instance)
		if s == nil {
			http.Error(w, fmt.Sprintf("no simulated server listens on %q", req.Instance), http.StatusNotFound)
			return
		}
		setting := settingOfFlag(req.Flag)
		if setting == "" {
			http.Error(w, "flag is required", http.StatusBadRequest)
			return
		}
		if req.Operation == opRead {
			value, ok := s.ReadSetting(setting)
			if !ok {
				http.Error(w, fmt.Sprintf("%s is not a %s setting (readable: %s)", req.Flag, s.Engine(), strings.Join(engineFlagNames(s.Engine()), ", ")), http.StatusUnprocessableEntity)
				return
			}
			writeJSON(w, http.StatusOK, ReadResponse{Instance: req.Instance, Flag: req.Flag, Value: value})
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if req.IdempotencyKey != "" && done[req.IdempotencyKey] {
			w.WriteHeader(http.StatusOK)
			return
		}
		if req.To == "" {
			http.Error(w, "to is required", http.StatusBadRequest)
			return
		}
		if err := s.ApplyFlag(req.Flag, req.To); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.IdempotencyKey != "" {
			done[req.IdempotencyKey] = true
		}
		w.WriteHeader(http.StatusOK)
	})
}

// ApplyFlag changes one engine flag to value, as a restart with the new
// flag would: the flag as on the engine's command line (--kv-cache-dtype,
// --tp), the value as it would follow the flag. It is how the webhook and
// the closed loop change a server, so both name a setting the same way.
func (s *Server) ApplyFlag(flag, value string) error {
	setting := settingOfFlag(flag)
	if setting == "" {
		return fmt.Errorf("setting %s to %q: the flag is empty", flag, value)
	}
	change, err := json.Marshal(map[string]any{setting: flagValue(value)})
	if err != nil {
		return fmt.Errorf("setting %s to %q: %w", flag, value, err)
	}
	if err := s.UpdateSettings(change); err != nil {
		return fmt.Errorf("setting %s to %q: %w", flag, value, err)
	}
	return nil
}

// settingOfFlag names the setting a flag changes: the flag without its
// dashes, in snake_case, except vLLM's --speculative-config, a JSON object
// of which perfagent's catalog changes num_speculative_tokens.
func settingOfFlag(flag string) string {
	if flag == "--speculative-config" {
		return "num_speculative_tokens"
	}
	return flagSetting(strings.ReplaceAll(strings.TrimLeft(flag, "-"), "-", "_"))
}

// engineFlagNames are the engine's settings as command-line flags.
func engineFlagNames(e Engine) []string {
	var flags []string
	for _, name := range engineFlags[e] {
		flags = append(flags, "--"+strings.ReplaceAll(name, "_", "-"))
	}
	return flags
}

func (f *Fleet) serverAt(listen string) *Server {
	for _, s := range f.servers {
		if s.cfg.Listen == listen {
			return s
		}
	}
	return nil
}

// verify checks a request's signature and that its timestamp is recent.
func verify(secret []byte, ts, signature string, body []byte, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q is not a Unix time", headerTimestamp, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxClockSkew || d < -maxClockSkew {
		return fmt.Errorf("%s is %s away from now", headerTimestamp, d.Round(time.Second))
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(signature), []byte(want)) {
		return fmt.Errorf("%s does not match the body", headerSignature)
	}
	return nil
}

// flagValue turns a flag value into the JSON the settings take.
func flagValue(s string) any {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return s
}
