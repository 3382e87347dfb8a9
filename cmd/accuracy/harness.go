package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/signalstore"
	"github.com/optiinfra/perfagent/simulator"
)

// Detection is one bottleneck firing on one instance at one evaluation.
type Detection struct {
	Bottleneck string
	Instance   string
}

// Options of a replay.
type Options struct {
	// Interval is both the scrape and the evaluation interval.
	Interval time.Duration
	// RateWindow is the collector's rate window.
	RateWindow time.Duration
	// Grace is how long after a truth interval ends a firing still counts
	// as detecting it (rules with keep_firing_for, rate windows).
	Grace time.Duration
	// Start is the simulated start time.
	Start time.Time
	// Dir holds the replay's TSDB.
	Dir string
	// EngineOnly has the store answer every query with the PromQL
	// engine, none directly.
	EngineOnly bool
}

// Episode is a run of consecutive evaluations in which one bottleneck
// fires on one instance.
type Episode struct {
	Bottleneck string        `json:"bottleneck"`
	Instance   string        `json:"instance"`
	From       time.Duration `json:"from"`
	To         time.Duration `json:"to"`
	// Truth is the index of the truth interval it matches, or -1 when it
	// is a false positive.
	Truth int `json:"truth"`
}

// TruthResult is how one ground-truth interval was detected.
type TruthResult struct {
	simulator.Truth
	Instance string `json:"instance"`
	Detected bool   `json:"detected"`
	// TimeToDetect is from the interval's start to the first firing.
	TimeToDetect time.Duration `json:"time_to_detect"`
	// Deadline is the detecting rule's `for` plus two of its group's
	// evaluation intervals; OnTime tells whether the first firing came
	// within it.
	Deadline time.Duration `json:"deadline"`
	OnTime   bool          `json:"on_time"`
}

// ScenarioResult scores one scenario.
type ScenarioResult struct {
	Name           string        `json:"name"`
	Seed           int64         `json:"seed"`
	Truths         []TruthResult `json:"truths"`
	Episodes       []Episode     `json:"episodes"`
	TruePositives  int           `json:"true_positives"`
	FalsePositives int           `json:"false_positives"`
	Misses         int           `json:"misses"`
	// Warnings are the episodes of forecast rules, each matched with the
	// detection it announced; Leads say, for every detected truth of a
	// forecast bottleneck, how long before the detection it was announced.
	Warnings []Warning `json:"warnings"`
	Leads    []Lead    `json:"leads"`
	// ForecastTruths counts the truths of a bottleneck a forecast rule
	// watches, detected or not.
	ForecastTruths int `json:"forecast_truths"`
}

// replay is one scenario running through the simulator and the agent's
// pipeline (collector, built-in rules and, for the closed loop,
// recommendations) in simulated time.
type replay struct {
	sc      simulator.Scenario
	o       Options
	fleet   *simulator.Fleet
	store   *signalstore.Store
	coll    *collector.Collector
	pipe    *agent.Pipeline
	servers map[string]*simulator.Server // by instance (listen address)
	firing  map[Detection][]time.Duration
	// forecasts are the evaluations at which a forecast rule warned of a
	// bottleneck, kept apart from the detections.
	forecasts map[Detection][]time.Duration
	cfg       config.Config
	profs     []*collector.Profile
}

// newReplay builds the replay of sc; with rec, every cycle also computes
// recommendations.
func newReplay(sc simulator.Scenario, o Options, rec *recommender.Recommender) (*replay, error) {
	fleet, err := simulator.NewFleet(sc.Fleet, o.Start)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	store, err := signalstore.Open(signalstore.Options{Path: o.Dir, Retention: 24 * time.Hour, EvaluationInterval: o.Interval, EngineOnly: o.EngineOnly})
	if err != nil {
		return nil, err
	}
	profs, err := builtinProfiles()
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	cfg := config.Default()
	cfg.Global.ScrapeInterval = config.Duration(o.Interval)
	cfg.Global.EvaluationInterval = config.Duration(o.Interval)
	cfg.Collector.RateWindow = config.Duration(o.RateWindow)
	coll := collector.New(collector.Options{Metrics: collector.NewMetrics(prometheus.NewRegistry()), Store: store})
	mgr := rules.NewManager(rules.ManagerOptions{Queryable: store, Appendable: store.DB(), QueryFunc: store.QueryFunc(), EvaluationInterval: o.Interval})
	if err := mgr.Update(rules.BuiltinFiles()); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("loading the built-in rules: %w", err)
	}
	pipe, err := agent.New(agent.Options{Collector: coll, Store: store, Rules: mgr, Recommender: rec}, agent.Config{Interval: o.Interval})
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	r := &replay{sc: sc, o: o, fleet: fleet, store: store, coll: coll, pipe: pipe, cfg: cfg, profs: profs,
		servers: map[string]*simulator.Server{}, firing: map[Detection][]time.Duration{}, forecasts: map[Detection][]time.Duration{}}
	for _, s := range fleet.Servers() {
		r.servers[s.Listen()] = s
	}
	if err := r.applyFacts(); err != nil {
		_ = store.Close()
		return nil, err
	}
	return r, nil
}

// applyFacts gives the collector each server's model and flags, as an
// operator's configuration does: vLLM does not export max_num_seqs, and
// TGI labels no model.
func (r *replay) applyFacts() error {
	r.cfg.Instances = nil
	for _, s := range r.fleet.Servers() {
		st := s.State()
		b, err := json.Marshal(st.Settings)
		if err != nil {
			return err
		}
		var raw map[string]any
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		settings := map[string]string{}
		for k, v := range raw {
			switch x := v.(type) {
			case bool:
				// As vLLM writes booleans in cache_config_info.
				settings[k] = map[bool]string{true: "True", false: "False"}[x]
			case float64:
				settings[k] = strconv.FormatFloat(x, 'f', -1, 64)
			case string:
				settings[k] = x
			}
		}
		r.cfg.Instances = append(r.cfg.Instances, config.InstanceConfig{Instance: s.Listen(), Model: st.Model, Settings: settings})
	}
	return r.coll.ApplyConfig(r.cfg, r.store, r.profs)
}

func (r *replay) close() { _ = r.store.Close() }

// step advances the fleet to off, stores one scrape of every server and
// runs the agent's cycle.
func (r *replay) step(ctx context.Context, off time.Duration) error {
	at := r.o.Start.Add(off)
	r.fleet.Advance(at)
	app := r.store.Appender(ctx)
	for _, s := range r.fleet.Servers() {
		var buf bytes.Buffer
		if err := s.WriteMetrics(&buf); err != nil {
			_ = app.Rollback()
			return err
		}
		if err := collector.AppendExposition(app, buf.Bytes(), at, labels.FromStrings(model.InstanceLabel, s.Listen(), model.JobLabel, "llmsim")); err != nil {
			_ = app.Rollback()
			return fmt.Errorf("scenario %s at %s: %w", r.sc.Name, off, err)
		}
	}
	if err := app.Commit(); err != nil {
		return err
	}
	if _, err := r.pipe.Cycle(ctx, at); err != nil {
		return fmt.Errorf("scenario %s at %s: %w", r.sc.Name, off, err)
	}
	for _, b := range r.pipe.Bottlenecks() {
		if b.State != rules.StateFiring {
			continue
		}
		d := Detection{Bottleneck: b.ID, Instance: b.Instance}
		if b.Forecast() != "" {
			r.forecasts[d] = append(r.forecasts[d], off)
			continue
		}
		r.firing[d] = append(r.firing[d], off)
	}
	return nil
}

// deadlines gives, per bottleneck id, the latest a detection is on time:
// the longest `for` of the rules that detect it (forecasts do not
// detect) plus two evaluations of the rule's group, one to see the
// condition begin and one to see the `for` end.
func (r *replay) deadlines() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, rl := range r.pipe.Rules() {
		if rl.Forecast != "" {
			continue
		}
		out[rl.Bottleneck] = max(out[rl.Bottleneck], rl.For+2*max(rl.Interval, r.o.Interval))
	}
	return out
}

// Replay runs one scenario and scores what fired against its truth.
func Replay(ctx context.Context, sc simulator.Scenario, o Options) (*ScenarioResult, error) {
	r, err := newReplay(sc, o, nil)
	if err != nil {
		return nil, err
	}
	defer r.close()
	for off := time.Duration(0); off <= time.Duration(sc.Fleet.Duration); off += o.Interval {
		if err := r.step(ctx, off); err != nil {
			return nil, err
		}
	}
	return r.score(), nil
}

// observed returns when a server's physical event first happened in this replay.
func (r *replay) observed(server, event string) (time.Duration, bool) {
	for _, s := range r.servers {
		if s.Name() == server {
			return s.Observed(event)
		}
	}
	return 0, false
}

// score matches firing episodes to truth intervals.
func (r *replay) score() *ScenarioResult {
	res := &ScenarioResult{Name: r.sc.Name, Seed: r.sc.Fleet.Seed}
	instanceOf := map[string]string{}
	for listen, s := range r.servers {
		instanceOf[s.Name()] = listen
	}
	deadlines := r.deadlines()
	for _, tr := range r.sc.Fleet.Truth {
		if tr.FromEvent != "" {
			at, ok := r.observed(tr.Server, tr.FromEvent)
			if !ok || at >= time.Duration(tr.To) {
				// The bottleneck never physically began in this replay.
				continue
			}
			tr.From = simulator.Duration(at)
		}
		res.Truths = append(res.Truths, TruthResult{Truth: tr, Instance: instanceOf[tr.Server], Deadline: deadlines[tr.Bottleneck]})
	}
	for _, d := range sortedDetections(r.firing) {
		for _, ep := range episodes(d, r.firing[d], r.o.Interval) {
			ep.Truth = -1
			for i := range res.Truths {
				tr := &res.Truths[i]
				from, to := time.Duration(tr.From), time.Duration(tr.To)+r.o.Grace
				if tr.Bottleneck != d.Bottleneck || tr.Instance != d.Instance || ep.To < from || ep.From > to {
					continue
				}
				ep.Truth = i
				delay := max(ep.From, from) - from
				if !tr.Detected || delay < tr.TimeToDetect {
					tr.TimeToDetect = delay
				}
				tr.Detected = true
				break
			}
			if ep.Truth < 0 {
				res.FalsePositives++
			} else {
				res.TruePositives++
			}
			res.Episodes = append(res.Episodes, ep)
		}
	}
	for i := range res.Truths {
		tr := &res.Truths[i]
		tr.OnTime = tr.Detected && tr.TimeToDetect <= tr.Deadline
		if !tr.Detected {
			res.Misses++
		}
	}
	r.scoreForecasts(res)
	return res
}

// sortedDetections returns the keys of m by bottleneck, then instance.
func sortedDetections(m map[Detection][]time.Duration) []Detection {
	keys := make([]Detection, 0, len(m))
	for d := range m {
		keys = append(keys, d)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Bottleneck != keys[j].Bottleneck {
			return keys[i].Bottleneck < keys[j].Bottleneck
		}
		return keys[i].Instance < keys[j].Instance
	})
	return keys
}

func episodes(d Detection, offs []time.Duration, interval time.Duration) []Episode {
	var out []Episode
	for i, off := range offs {
		if i > 0 && off-offs[i-1] <= interval {
			out[len(out)-1].To = off
			continue
		}
		out = append(out, Episode{Bottleneck: d.Bottleneck, Instance: d.Instance, From: off, To: off})
	}
	return out
}
