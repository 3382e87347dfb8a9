package v1

import (
	"net/http"

	"github.com/optiinfra/perfagent/collector"
)

// unknownEngine is the engine of a target whose instance served no known
// engine in the last collection (a target down since the start, or one
// that serves something else).
const unknownEngine = "unknown"

// Target is one scrape target with the engine its instance served in the
// last collection.
type Target struct {
	collector.TargetHealth
	Engine string `json:"engine"`
}

// TargetsResponse is the answer of GET /api/v1/targets.
type TargetsResponse struct {
	Targets       []Target `json:"targets"`
	NextPageToken string   `json:"next_page_token,omitempty"`
}

// TargetCounts counts scrape targets by health.
type TargetCounts struct {
	Total   int `json:"total"`
	Up      int `json:"up"`
	Down    int `json:"down"`
	Unknown int `json:"unknown"`
}

func (c *TargetCounts) add(health string) {
	c.Total++
	switch health {
	case "up":
		c.Up++
	case "down":
		c.Down++
	default:
		c.Unknown++
	}
}

// TargetsSummary is the scrape targets of GET /api/v1/health: counts by
// health, in all and per engine. GET /api/v1/targets lists them.
type TargetsSummary struct {
	TargetCounts
	Engines map[string]TargetCounts `json:"engines"`
}

// targetList is the scrape targets, in configuration order, with their
// engines.
func (a *API) targetList() []Target {
	th := a.o.Targets()
	engines := map[string]string{}
	if snap := a.o.Collector.Latest(); snap != nil {
		for _, in := range snap.Instances {
			engines[in.Instance] = in.Engine
		}
	}
	out := make([]Target, 0, len(th))
	for _, t := range th {
		e := engines[t.Instance]
		if e == "" {
			e = unknownEngine
		}
		out = append(out, Target{TargetHealth: t, Engine: e})
	}
	return out
}

func summarize(targets []Target) *TargetsSummary {
	s := &TargetsSummary{Engines: map[string]TargetCounts{}}
	for _, t := range targets {
		s.add(t.Health)
		c := s.Engines[t.Engine]
		c.add(t.Health)
		s.Engines[t.Engine] = c
	}
	return s
}

// targetFilters are the query parameters of GET /api/v1/targets, each
// matched exactly.
var targetFilters = []struct {
	param param
	field func(Target) string
}{
	{param{name: "health", description: "keep the targets of this health: up, down or unknown"}, func(t Target) string { return t.Health }},
	{engineParam, func(t Target) string { return t.Engine }},
}

func (a *API) targets(r *http.Request) (any, *apiError) {
	q := r.URL.Query()
	out := []Target{}
	for _, t := range a.targetList() {
		keep := true
		for _, f := range targetFilters {
			if v := q.Get(f.param.name); v != "" && f.field(t) != v {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, t)
		}
	}
	items, next, apiErr := page(out, q)
	if apiErr != nil {
		return nil, apiErr
	}
	return TargetsResponse{Targets: items, NextPageToken: next}, nil
}

func (a *API) health(*http.Request) (any, *apiError) {
	h := a.o.Health()
	if a.o.Targets != nil {
		h.Targets = summarize(a.targetList())
	}
	return h, nil
}
