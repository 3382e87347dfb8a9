package workflow

import (
	"sync"
	"time"

	"github.com/prometheus/prometheus/notifier"
)

type postedAlert struct {
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
}

// recordingSink records the alerts the controller hands off.
type recordingSink struct {
	mu     sync.Mutex
	alerts []postedAlert
}

func (s *recordingSink) Send(alerts ...*notifier.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range alerts {
		s.alerts = append(s.alerts, postedAlert{
			Labels: a.Labels.Map(), Annotations: a.Annotations.Map(),
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL,
		})
	}
}

func (s *recordingSink) all() []postedAlert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]postedAlert(nil), s.alerts...)
}
