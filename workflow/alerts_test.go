package workflow

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type postedAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// fakeAlertmanager records alert posts and answers with status().
type fakeAlertmanager struct {
	mu     sync.Mutex
	posts  [][]postedAlert
	auth   []string
	paths  []string
	status int
}

func (f *fakeAlertmanager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	user, pw, _ := r.BasicAuth()
	f.auth = append(f.auth, user+":"+pw)
	if f.status != 0 && f.status != http.StatusOK {
		w.WriteHeader(f.status)
		return
	}
	var as []postedAlert
	if err := json.Unmarshal(b, &as); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.posts = append(f.posts, as)
	w.WriteHeader(http.StatusOK)
}

func (f *fakeAlertmanager) all() []postedAlert {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []postedAlert
	for _, p := range f.posts {
		out = append(out, p...)
	}
	return out
}

func testAlert(gate, summary string) Alert {
	return Alert{
		Labels:      map[string]string{"alertname": AlertApprovalRequired, "workflow_id": "wf-1", "gate": gate},
		Annotations: map[string]string{"summary": summary},
		StartsAt:    t0, EndsAt: t0.Add(4 * time.Minute), GeneratorURL: "http://agent/workflows/wf-1",
	}
}

func TestAlertSender(t *testing.T) {
	am1, am2 := &fakeAlertmanager{}, &fakeAlertmanager{status: http.StatusInternalServerError}
	s1, s2 := httptest.NewServer(am1), httptest.NewServer(am2)
	defer s1.Close()
	defer s2.Close()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	u1 := strings.Replace(s1.URL, "http://", "http://user:pw@", 1) + "/am"
	s, err := NewAlertSender(AlertSenderOptions{URLs: []string{u1, s2.URL}, Metrics: m, Capacity: 2, Backoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.Send(testAlert("start", "v1"), testAlert("stage-2", "v1"))
	next := s.Flush(ctx, t0)
	if got := am1.all(); len(got) != 2 || got[0].Labels["gate"] != "start" || got[0].Annotations["summary"] != "v1" ||
		!got[0].StartsAt.Equal(t0) || !got[0].EndsAt.Equal(t0.Add(4*time.Minute)) || got[0].GeneratorURL != "http://agent/workflows/wf-1" {
		t.Fatalf("first Alertmanager got %+v", got)
	}
	if am1.paths[0] != "POST /am/api/v2/alerts" || am1.auth[0] != "user:pw" {
		t.Fatalf("request %s with auth %s", am1.paths[0], am1.auth[0])
	}
	if !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next attempt %v, want after one second of backoff", next)
	}
	if got := testutil.ToFloat64(m.Notifications.WithLabelValues(OutcomeSuccess)); got != 2 {
		t.Fatalf("success = %v", got)
	}
	if got := testutil.ToFloat64(m.Notifications.WithLabelValues(OutcomeFailure)); got != 2 {
		t.Fatalf("failure = %v", got)
	}

	// While backing off, a newer version replaces the queued one; the
	// healthy Alertmanager gets it at once.
	s.Send(testAlert("start", "v2"))
	s.Flush(ctx, t0.Add(500*time.Millisecond))
	am2.mu.Lock()
	tries := len(am2.paths)
	am2.status = http.StatusOK
	am2.mu.Unlock()
	if tries != 1 {
		t.Fatalf("backing-off Alertmanager tried %d times", tries)
	}
	if next := s.Flush(ctx, t0.Add(time.Second)); !next.IsZero() {
		t.Fatalf("queue not empty after recovery, next %v", next)
	}
	got := am2.all()
	if len(got) != 2 {
		t.Fatalf("recovered Alertmanager got %d alerts, want the 2 latest", len(got))
	}
	for _, a := range got {
		if a.Labels["gate"] == "start" && a.Annotations["summary"] != "v2" {
			t.Fatalf("stale version delivered: %+v", a)
		}
	}

	// Beyond the capacity the oldest alert is dropped.
	s.Send(testAlert("a", "x"), testAlert("b", "x"), testAlert("c", "x"))
	if got := testutil.ToFloat64(m.Notifications.WithLabelValues(OutcomeDropped)); got != 2 {
		t.Fatalf("dropped = %v, want one per Alertmanager", got)
	}
	s.Flush(ctx, t0.Add(2*time.Second))
	if got := am1.all(); len(got) != 5 || got[3].Labels["gate"] != "b" || got[4].Labels["gate"] != "c" {
		t.Fatalf("after the overflow the first Alertmanager got %+v", got)
	}

	if _, err := NewAlertSender(AlertSenderOptions{URLs: []string{"localhost:9093"}}); err == nil {
		t.Fatal("accepted a URL without scheme")
	}
}

func TestAlertSenderRunFlushesOnStop(t *testing.T) {
	am := &fakeAlertmanager{}
	srv := httptest.NewServer(am)
	defer srv.Close()
	s, err := NewAlertSender(AlertSenderOptions{URLs: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Send(testAlert("start", "v1"))
	s.Run(ctx)
	if got := am.all(); len(got) != 1 {
		t.Fatalf("got %d alerts after Run stopped, want the queued one", len(got))
	}
}

func TestAlertSenderSetURLs(t *testing.T) {
	s, err := NewAlertSender(AlertSenderOptions{URLs: []string{"http://am-1:9093", "http://am-2:9093"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(Alert{Labels: map[string]string{"alertname": "A"}})
	if err := s.SetURLs([]string{"http://am-2:9093", "ftp://am-3"}); err == nil {
		t.Fatal("a non-HTTP Alertmanager URL was accepted")
	}
	if got := len(s.currentTargets()); got != 2 {
		t.Fatalf("a refused SetURLs changed the Alertmanagers: %d", got)
	}
	if err := s.SetURLs([]string{"http://am-2:9093", "http://u:pw@am-3:9093"}); err != nil {
		t.Fatal(err)
	}
	ts := s.currentTargets()
	if len(ts) != 2 || ts[0].url != "http://am-2:9093" || ts[1].url != "http://am-3:9093" {
		t.Fatalf("targets after SetURLs: %+v", ts)
	}
	if len(ts[0].pending) != 1 || len(ts[1].pending) != 0 {
		t.Errorf("queued alerts: kept Alertmanager %d, new one %d; want 1 and 0", len(ts[0].pending), len(ts[1].pending))
	}
}
