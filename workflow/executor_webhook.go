package workflow

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Headers of a webhook call.
const (
	HeaderSignature      = "X-PerfAgent-Signature"
	HeaderTimestamp      = "X-PerfAgent-Timestamp"
	HeaderIdempotencyKey = "X-PerfAgent-Idempotency-Key"
)

// WebhookOptions configure a WebhookExecutor.
type WebhookOptions struct {
	URL string
	// Secret keys the HMAC-SHA256 signature.
	Secret []byte
	// Client defaults to an http.Client without timeout; Timeout bounds each attempt.
	Client  *http.Client
	Timeout time.Duration
	// Retries is the number of retries after the first attempt (0 means
	// the default, 3; a negative value means none).
	Retries int
	// Backoff is the first wait between attempts (default 1s), doubling up to 30s.
	Backoff time.Duration
	Now     func() time.Time
	Sleep   SleepFunc
	// Read says the receiver answers read requests (operation "read")
	// with the instance's current value; without it Read returns
	// ErrReadUnsupported, so a receiver that does not know reads is never
	// sent one it might take for a change.
	Read bool
}

// WebhookExecutor POSTs each request as JSON to a URL. The body is signed:
// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of
// "<timestamp>.<body>", where timestamp is HeaderTimestamp (Unix seconds).
// A 2xx answer is success; 5xx, 429 and transport errors are retried with
// backoff; other answers fail at once. A read is the same signed POST with
// operation "read", answered with a JSON object whose "value" is the
// instance's current value of the flag.
type WebhookExecutor struct {
	opts WebhookOptions
}

// NewWebhookExecutor returns a WebhookExecutor, filling unset options.
func NewWebhookExecutor(o WebhookOptions) (*WebhookExecutor, error) {
	if o.URL == "" {
		return nil, errors.New("webhook executor: no URL")
	}
	if len(o.Secret) == 0 {
		return nil, errors.New("webhook executor: no secret")
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Retries < 0 {
		o.Retries = 0
	} else if o.Retries == 0 {
		o.Retries = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = Sleep
	}
	return &WebhookExecutor{opts: o}, nil
}

// Sign returns the signature header value of body at timestamp ts.
func Sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Execute implements Executor.
func (e *WebhookExecutor) Execute(ctx context.Context, r Request) error {
	_, err := e.call(ctx, r, r.IdempotencyKey)
	return err
}

// ReadResponse is the answer of a webhook receiver to a read.
type ReadResponse struct {
	Instance string `json:"instance"`
	Flag     string `json:"flag"`
	Value    string `json:"value"`
}

// Read implements Reader.
func (e *WebhookExecutor) Read(ctx context.Context, r Request) (string, error) {
	if !e.opts.Read {
		return "", ErrReadUnsupported
	}
	r.Operation, r.From, r.To, r.IdempotencyKey = OperationRead, "", "", ""
	what := "read " + r.Flag + " on " + r.Instance
	body, err := e.call(ctx, r, what)
	if err != nil {
		return "", err
	}
	var resp ReadResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return "", fmt.Errorf("webhook %s: answer is not a read response: %w", what, err)
	}
	if resp.Value == "" {
		return "", fmt.Errorf("webhook %s: answer has no value", what)
	}
	return resp.Value, nil
}

// call posts r, retrying as configured, and returns the answer's body.
func (e *WebhookExecutor) call(ctx context.Context, r Request, what string) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode webhook request %s: %w", what, err)
	}
	var last error
	for attempt := 0; attempt <= e.opts.Retries; attempt++ {
		if attempt > 0 {
			if err := e.opts.Sleep(ctx, backoff(e.opts.Backoff, 30*time.Second, attempt)); err != nil {
				return nil, fmt.Errorf("webhook %s: %w (last error: %w)", what, err, last)
			}
		}
		answer, retry, err := e.post(ctx, r.IdempotencyKey, body)
		if err == nil {
			return answer, nil
		}
		last = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("webhook %s: %w", what, last)
}

// maxAnswerBytes bounds what is read of a receiver's answer.
const maxAnswerBytes = 64 << 10

func (e *WebhookExecutor) post(ctx context.Context, key string, body []byte) (answer []byte, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.opts.URL, bytes.NewReader(body))
	if err != nil {
		return nil, false, fmt.Errorf("build request to %s: %w", e.opts.URL, err)
	}
	ts := strconv.FormatInt(e.opts.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(e.opts.Secret, ts, body))
	if key != "" {
		req.Header.Set(HeaderIdempotencyKey, key)
	}
	resp, err := e.opts.Client.Do(req)
	if err != nil {
		return nil, true, fmt.Errorf("post to %s: %w", e.opts.URL, err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if resp.StatusCode/100 == 2 {
		if err != nil {
			return nil, true, fmt.Errorf("read answer of %s: %w", e.opts.URL, err)
		}
		return msg, false, nil
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
	return nil, retry, fmt.Errorf("post to %s: status %d: %s", e.opts.URL, resp.StatusCode, bytes.TrimSpace(msg[:min(len(msg), 512)]))
}
