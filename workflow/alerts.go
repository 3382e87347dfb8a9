package workflow

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
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

// AlertSink takes alerts to deliver to Alertmanager. Send must not block:
// the controller calls it while deciding, and sends every alert again each
// resend interval, so a sink may drop what it cannot deliver.
type AlertSink interface {
	Send(alerts ...*notifier.Alert)
}

func (a Alert) notifierAlert() *notifier.Alert {
	return &notifier.Alert{
		Labels:       labels.FromMap(a.Labels),
		Annotations:  labels.FromMap(a.Annotations),
		StartsAt:     a.StartsAt,
		EndsAt:       a.EndsAt,
		GeneratorURL: a.GeneratorURL,
	}
}
