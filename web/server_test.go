package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// bigGatherer gathers one family of n series whose label values are 1 KiB
// each: an exposition larger than loopback's socket buffers.
type bigGatherer int

func (n bigGatherer) Gather() ([]*dto.MetricFamily, error) {
	value := strings.Repeat("x", 1024)
	mf := &dto.MetricFamily{Name: proto.String("big"), Help: proto.String("Big."), Type: dto.MetricType_GAUGE.Enum()}
	for i := range int(n) {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{{Name: proto.String("i"), Value: proto.String(fmt.Sprint(i))}, {Name: proto.String("pad"), Value: proto.String(value)}},
			Gauge: &dto.Gauge{Value: proto.Float64(1)},
		})
	}
	return []*dto.MetricFamily{mf}, nil
}

// TestSlowClientsAreDisconnected holds the server's two connections with
// a client that sends half a request's headers and one that asks for a
// large answer and reads nothing, and checks that the server closes both
// within its timeouts, so that a third client is served.
func TestSlowClientsAreDisconnected(t *testing.T) {
	const (
		readTimeout  = 500 * time.Millisecond
		writeTimeout = time.Second
		// The size of /metrics; far larger than what the kernel buffers.
		series = 40_000
	)
	h := New(Options{
		Logger: slog.New(slog.DiscardHandler), Gatherer: bigGatherer(series), Ready: func() bool { return true },
		ReadTimeout: readTimeout, WriteTimeout: writeTimeout, MaxConnections: 2,
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, l, "") }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	addr := l.Addr().String()
	// A small receive buffer, set before connecting, so that the server's
	// writes to the client that reads nothing block soon.
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}

	// closedAfter sends what to a new connection and reports, on the
	// channel, how long the server took to close it and the bytes read,
	// reading nothing until wait has passed.
	type closed struct {
		after time.Duration
		n     int64
		err   error
	}
	closedAfter := func(what string, wait time.Duration) <-chan closed {
		ch := make(chan closed, 1)
		conn, err := dialer.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		start := time.Now()
		if _, err := io.WriteString(conn, what); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(wait)
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := io.Copy(io.Discard, conn)
			ch <- closed{after: time.Since(start), n: n, err: err}
		}()
		return ch
	}
	slowloris := closedAfter("GET /-/healthy HTTP/1.1\r\nHost: perfagent\r\nX-Slow: ", 0)
	nonReader := closedAfter("GET /metrics HTTP/1.1\r\nHost: perfagent\r\n\r\n", 3*writeTimeout)

	// Both connections are taken; this request is served only once the
	// server has closed one of them.
	start := time.Now()
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get("http://" + addr + "/-/healthy")
	if err != nil {
		t.Fatalf("a third client while two slow ones hold the connections: %v", err)
	}
	resp.Body.Close()
	if waited := time.Since(start); resp.StatusCode != http.StatusOK || waited > 5*time.Second {
		t.Errorf("a third client got %d after %s", resp.StatusCode, waited)
	}

	s := <-slowloris
	if s.after > readTimeout+3*time.Second || s.err != nil && !errors.Is(s.err, syscall.ECONNRESET) {
		t.Errorf("half a request's headers: closed after %s (%v), want about %s", s.after, s.err, readTimeout)
	}
	// The whole answer is over 40 MB; what arrived before the server gave
	// up is at most what the kernel buffered.
	n := <-nonReader
	if n.err != nil && !errors.Is(n.err, syscall.ECONNRESET) {
		t.Errorf("the client that reads nothing: %v after %s", n.err, n.after)
	}
	if n.n >= series*1024 {
		t.Errorf("the client that reads nothing got the whole answer (%d bytes): it was not cut", n.n)
	}
	t.Logf("half a header: closed after %s; reading nothing: %d bytes before the cut", s.after.Round(time.Millisecond), n.n)

	// An idle keep-alive connection is closed after the read timeout.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /-/healthy HTTP/1.1\r\nHost: perfagent\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	answered := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("an idle connection: %v, want the server to close it", err)
	}
	if idle := time.Since(answered); idle > readTimeout+3*time.Second {
		t.Errorf("an idle connection was closed after %s, want about %s", idle, readTimeout)
	}
}
