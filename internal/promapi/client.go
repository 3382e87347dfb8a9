package promapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// Client asks one query API.
type Client struct {
	query, queryRange *url.URL
	http              *http.Client
}

// NewClient returns a client of the API under base (for example
// http://prometheus:9090 or http://mimir/prometheus), sending its
// requests with hc.
func NewClient(base string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parsing the query API's URL %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("the query API's URL %q: the scheme must be http or https", base)
	}
	return &Client{
		query:      u.JoinPath("api/v1/query"),
		queryRange: u.JoinPath("api/v1/query_range"),
		http:       hc,
	}, nil
}

// Query evaluates expr at ts (the server's now when ts is zero).
// timeout, when positive, is sent as the query's evaluation timeout. A
// scalar answer is a vector of one sample without labels; native
// histograms other than with custom buckets are left out (histogram.go).
func (c *Client) Query(ctx context.Context, expr string, ts time.Time, timeout time.Duration) (promql.Vector, error) {
	args := url.Values{"query": {expr}}
	if !ts.IsZero() {
		args.Set("time", formatTime(ts))
	}
	setTimeout(args, timeout)
	return ask(ctx, c, c.query, args, (*responseReader).vector)
}

// QueryRange evaluates expr from start to end every step. Native
// histograms other than with custom buckets are left out.
func (c *Client) QueryRange(ctx context.Context, expr string, start, end time.Time, step, timeout time.Duration) (promql.Matrix, error) {
	args := url.Values{
		"query": {expr},
		"start": {formatTime(start)},
		"end":   {formatTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	setTimeout(args, timeout)
	return ask(ctx, c, c.queryRange, args, (*responseReader).matrix)
}

// ask sends args to the endpoint ep and reads a successful answer's data
// with read.
func ask[T any](ctx context.Context, c *Client, ep *url.URL, args url.Values, read func(*responseReader) (T, error)) (T, error) {
	var out T
	resp, err := c.send(ctx, ep, args)
	if err != nil {
		return out, err
	}
	defer drain(resp)
	err = readResponse(resp, func(r *responseReader) error {
		var err error
		out, err = read(r)
		return err
	})
	return out, err
}

// send POSTs args as a form, as Prometheus's own clients do, so that long
// expressions fit, and sends them again as a GET when the server refuses
// the method (a proxy in front of it may allow only GET).
func (c *Client) send(ctx context.Context, ep *url.URL, args url.Values) (*http.Response, error) {
	form := args.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.String(), strings.NewReader(form))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// A POST that is safe to send again: the transport may then retry it on
	// a connection that closed under it, as it does a GET.
	req.Header["Idempotency-Key"] = nil
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		drain(resp)
		get := *ep
		get.RawQuery = form
		if req, err = http.NewRequestWithContext(ctx, http.MethodGet, get.String(), nil); err != nil {
			return nil, err
		}
		return c.http.Do(req)
	}
	return resp, nil
}

// readResponse tells an answer from an error. Prometheus answers a bad
// query with 400 or 422 and an error in the envelope; any other status
// outside 2xx is the server's or a proxy's, whatever the body says.
func readResponse(resp *http.Response, decode func(*responseReader) error) error {
	code := resp.StatusCode
	apiError := code == http.StatusBadRequest || code == http.StatusUnprocessableEntity
	if code/100 != 2 && !apiError {
		typ := ErrBadResponse
		switch code / 100 {
		case 4:
			typ = ErrClient
		case 5:
			typ = ErrServer
		}
		return &Error{Type: typ, Msg: fmt.Sprintf("HTTP status %s", resp.Status)}
	}
	r := newResponseReader(resp.Body)
	env, err := r.envelope(decode)
	if err != nil {
		return &Error{Type: ErrBadResponse, Msg: err.Error()}
	}
	switch {
	case env.status == "error":
		return &Error{Type: ErrorType(env.errorType), Msg: env.errMsg}
	case env.status != "success":
		return &Error{Type: ErrBadResponse, Msg: fmt.Sprintf("unknown status %q", env.status)}
	case apiError:
		return &Error{Type: ErrBadResponse, Msg: fmt.Sprintf("a successful answer with HTTP status %s", resp.Status)}
	case !env.hasData:
		return &Error{Type: ErrBadResponse, Msg: "a successful answer without data"}
	}
	return nil
}

// drain reads what is left of the body, so that the connection can be
// used again, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
}

func setTimeout(args url.Values, timeout time.Duration) {
	if timeout > 0 {
		args.Set("timeout", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	}
}

// formatTime writes t as the API's seconds since the epoch.
func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.Unix())+float64(t.Nanosecond())/1e9, 'f', -1, 64)
}
