package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
	"github.com/optiinfra/perfagent/simulator"
)

// speculative lists the signals an engine exports only while speculative
// decoding is on.
var speculative = map[string]bool{signals.SpecDecodeAcceptanceRatio: true, signals.SpecDecodeAcceptanceLength: true}

// TestProfilesReadSimulatorExpositions runs the demo fleet in simulated
// time and checks that every rule of each engine's built-in profile finds
// its metrics in that engine's exposition. The simulator takes its metric
// names from the engines' documentation and imports nothing of the
// agent's, so a wrong name on either side fails here.
func TestProfilesReadSimulatorExpositions(t *testing.T) {
	cfg, err := simulator.LoadFleet("../../examples/demo/fleet.yml")
	if err != nil {
		t.Fatal(err)
	}
	// A vLLM server with speculative decoding on, whose families exist
	// only then: the profile's speculative-decoding signals must find them.
	spec := cfg.Servers[0]
	spec.Name, spec.Listen = "vllm-spec", "vllm-spec.invalid:8000"
	spec.Settings.NumSpeculativeTokens = 3
	spec.Workload.SpecAcceptance = 0.6
	cfg.Servers = append(cfg.Servers, spec)
	start := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	fleet, err := simulator.NewFleet(cfg, start)
	if err != nil {
		t.Fatal(err)
	}
	store, err := signalstore.Open(signalstore.Options{Path: t.TempDir(), Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var at time.Time
	for step := 0; step <= 16; step++ {
		at = start.Add(time.Duration(step) * 15 * time.Second)
		fleet.Advance(at)
		for _, s := range fleet.Servers() {
			var buf bytes.Buffer
			if err := s.WriteMetrics(&buf); err != nil {
				t.Fatal(err)
			}
			app := store.Appender(context.Background())
			if err := collector.AppendExposition(app, buf.Bytes(), at, labels.FromStrings(model.InstanceLabel, s.Listen(), model.JobLabel, "sim")); err != nil {
				t.Fatal(err)
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	profs, errs := collector.LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	c := collector.New(collector.Options{Metrics: collector.NewMetrics(prometheus.NewRegistry())})
	if err := c.ApplyConfig(config.Default(), store, profs); err != nil {
		t.Fatal(err)
	}
	snap, err := c.Collect(context.Background(), at, collector.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Errors) > 0 {
		t.Errorf("rule errors: %v", snap.Errors)
	}
	byEngine := map[string]*collector.Profile{}
	for _, p := range profs {
		byEngine[p.Engine] = p
	}
	for _, s := range fleet.Servers() {
		in := snap.Instance(s.Listen())
		if in == nil {
			t.Errorf("%s (%s): not detected", s.Name(), s.Engine())
			continue
		}
		if in.Engine != string(s.Engine()) {
			t.Errorf("%s: detected as %s, runs %s", s.Name(), in.Engine, s.Engine())
		}
		// TGI labels no model; the configuration or /info names it.
		if (in.Model == "") != (in.Engine == signals.EngineTGI) {
			t.Errorf("%s (%s): model %q", s.Name(), in.Engine, in.Model)
		}
		have := map[string]bool{}
		for _, sv := range in.Signals {
			have[sv.Name+"/"+sv.Quantile] = true
		}
		specOn := s.State().Settings.NumSpeculativeTokens > 0
		for _, r := range byEngine[in.Engine].Rules {
			key := r.Record + "/" + r.Labels.Get(signals.LabelQuantile)
			if speculative[r.Record] && !specOn {
				if have[key] {
					t.Errorf("%s (%s): %s present with speculative decoding off", s.Name(), in.Engine, key)
				}
				continue
			}
			if !have[key] {
				t.Errorf("%s (%s): %s is missing: the profile's expression %s finds nothing in the simulator's exposition", s.Name(), in.Engine, key, r.Expr)
			}
		}
		if !have[signals.KVCacheCapacity+"/"] {
			t.Errorf("%s: no KV-cache capacity", s.Name())
		}
	}
}
