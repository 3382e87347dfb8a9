package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/models"
)

// Alert is one alert as posted to Alertmanager. Labels are its identity.
type Alert struct {
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
}

func (a Alert) key() string {
	names := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s=%q,", k, a.Labels[k])
	}
	return b.String()
}

func (a Alert) postable() *models.PostableAlert {
	return &models.PostableAlert{
		Alert: models.Alert{
			Labels:       models.LabelSet(a.Labels),
			GeneratorURL: strfmt.URI(a.GeneratorURL),
		},
		Annotations: models.LabelSet(a.Annotations),
		StartsAt:    strfmt.DateTime(a.StartsAt),
		EndsAt:      strfmt.DateTime(a.EndsAt),
	}
}

// AlertSenderOptions configure an AlertSender.
type AlertSenderOptions struct {
	// URLs are the Alertmanagers; each alert goes to every one of them.
	// Userinfo in a URL becomes basic auth.
	URLs []string
	// Client carries TLS and auth settings; it defaults to http.DefaultClient.
	Client *http.Client
	// Timeout bounds one post (default 10s).
	Timeout time.Duration
	// Capacity bounds the alerts waiting per Alertmanager (default 1000);
	// the oldest is dropped beyond it.
	Capacity int
	// Backoff is the first wait after a failed post (default 1s), doubling
	// up to MaxBackoff (default 1m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	Now        func() time.Time
	Metrics    *Metrics
	Logger     *slog.Logger
}

// AlertSender delivers alerts to Alertmanager from a bounded queue. It keeps
// only the latest version of each alert, retries failures with backoff and
// never blocks its callers. Run it as its own actor.
type AlertSender struct {
	opts AlertSenderOptions
	wake chan struct{}

	targetsMu sync.Mutex
	targets   []*amTarget
}

type amTarget struct {
	raw string // as configured, password included: the key for SetURLs
	url string // without the password, for logs
	api *amclient.AlertmanagerAPI

	mu       sync.Mutex
	pending  map[string]Alert
	order    []string
	failures int
	next     time.Time
}

// NewAlertSender builds clients for every URL.
func NewAlertSender(o AlertSenderOptions) (*AlertSender, error) {
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Capacity <= 0 {
		o.Capacity = 1000
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &AlertSender{opts: o, wake: make(chan struct{}, 1)}
	if err := s.SetURLs(o.URLs); err != nil {
		return nil, err
	}
	return s, nil
}

// SetURLs replaces the Alertmanagers. One whose URL stays keeps its queue;
// a removed one's queued alerts are dropped (the controller re-sends
// firing alerts). On error nothing changes.
func (s *AlertSender) SetURLs(urls []string) error {
	s.targetsMu.Lock()
	defer s.targetsMu.Unlock()
	kept := map[string]*amTarget{}
	for _, t := range s.targets {
		kept[t.raw] = t
	}
	next := make([]*amTarget, 0, len(urls))
	for _, raw := range urls {
		if t, ok := kept[raw]; ok {
			next = append(next, t)
			continue
		}
		t, err := s.newTarget(raw)
		if err != nil {
			return err
		}
		next = append(next, t)
	}
	s.targets = next
	return nil
}

func (s *AlertSender) newTarget(raw string) (*amTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// The parser's message quotes the URL, password and all.
		return nil, errors.New("an Alertmanager URL does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("the Alertmanager URL %q: want http(s)://host[:port][/path]", u.Redacted())
	}
	tr := httptransport.NewWithClient(u.Host, path.Join("/", u.Path, "/api/v2"), []string{u.Scheme}, s.opts.Client)
	if u.User != nil {
		pw, _ := u.User.Password()
		tr.DefaultAuthentication = httptransport.BasicAuth(u.User.Username(), pw)
	}
	u.User = nil
	return &amTarget{raw: raw, url: u.String(), api: amclient.New(tr, strfmt.Default), pending: map[string]Alert{}}, nil
}

// currentTargets are the Alertmanagers in force.
func (s *AlertSender) currentTargets() []*amTarget {
	s.targetsMu.Lock()
	defer s.targetsMu.Unlock()
	return s.targets
}

// Send queues the alerts for every Alertmanager, replacing queued versions
// with the same labels. It does not block.
func (s *AlertSender) Send(alerts ...Alert) {
	for _, t := range s.currentTargets() {
		t.mu.Lock()
		for _, a := range alerts {
			k := a.key()
			if _, ok := t.pending[k]; !ok {
				t.order = append(t.order, k)
			}
			t.pending[k] = a
		}
		for len(t.order) > s.opts.Capacity {
			delete(t.pending, t.order[0])
			t.order = t.order[1:]
			s.opts.Metrics.Notifications.WithLabelValues(OutcomeDropped).Inc()
		}
		t.mu.Unlock()
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Flush posts the queued alerts to every Alertmanager not backing off at
// now, and returns when the next attempt is due (zero if nothing waits).
func (s *AlertSender) Flush(ctx context.Context, now time.Time) time.Time {
	return s.flush(ctx, now, false)
}

func (s *AlertSender) flush(ctx context.Context, now time.Time, ignoreBackoff bool) time.Time {
	var next time.Time
	for _, t := range s.currentTargets() {
		if due := s.flushTarget(ctx, t, now, ignoreBackoff); !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	return next
}

func (s *AlertSender) flushTarget(ctx context.Context, t *amTarget, now time.Time, ignoreBackoff bool) time.Time {
	t.mu.Lock()
	if len(t.order) == 0 {
		t.mu.Unlock()
		return time.Time{}
	}
	if now.Before(t.next) && !ignoreBackoff {
		defer t.mu.Unlock()
		return t.next
	}
	batch := make(models.PostableAlerts, 0, len(t.order))
	sent := make(map[string]Alert, len(t.order))
	for _, k := range t.order {
		batch = append(batch, t.pending[k].postable())
		sent[k] = t.pending[k]
	}
	t.mu.Unlock()

	pctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	_, err := t.api.Alert.PostAlerts(alert.NewPostAlertsParams().WithContext(pctx).WithAlerts(batch))
	cancel()

	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		var bad *alert.PostAlertsBadRequest
		if !errors.As(err, &bad) {
			t.failures++
			t.next = now.Add(backoff(s.opts.Backoff, s.opts.MaxBackoff, t.failures))
			s.opts.Metrics.Notifications.WithLabelValues(OutcomeFailure).Add(float64(len(batch)))
			s.opts.Logger.Warn("Posting alerts to Alertmanager failed", "alertmanager", t.url, "alerts", len(batch), "retry_at", t.next, "err", err)
			return t.next
		}
		// Alertmanager rejected some alerts as invalid; sending them again
		// cannot help, so they leave the queue like delivered ones.
		s.opts.Metrics.Notifications.WithLabelValues(OutcomeFailure).Add(float64(len(batch)))
		s.opts.Logger.Error("Alertmanager rejected alerts", "alertmanager", t.url, "err", err)
	} else {
		s.opts.Metrics.Notifications.WithLabelValues(OutcomeSuccess).Add(float64(len(batch)))
	}
	t.failures, t.next = 0, time.Time{}
	// Drop what was delivered unless a newer version arrived meanwhile.
	t.order = slices.DeleteFunc(t.order, func(k string) bool {
		a, ok := sent[k]
		if ok && sameAlert(t.pending[k], a) {
			delete(t.pending, k)
			return true
		}
		return false
	})
	if len(t.order) > 0 {
		return now
	}
	return time.Time{}
}

func sameAlert(a, b Alert) bool {
	return a.StartsAt.Equal(b.StartsAt) && a.EndsAt.Equal(b.EndsAt) && a.GeneratorURL == b.GeneratorURL &&
		equalMaps(a.Labels, b.Labels) && equalMaps(a.Annotations, b.Annotations)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// Run delivers queued alerts until ctx is done, then makes one last
// attempt at every Alertmanager, bounded by the post timeout.
func (s *AlertSender) Run(ctx context.Context) {
	for {
		next := s.Flush(ctx, s.opts.Now())
		var timer *time.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(max(next.Sub(s.opts.Now()), 10*time.Millisecond))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
			s.flush(fctx, s.opts.Now(), true)
			cancel()
			return
		case <-s.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}
