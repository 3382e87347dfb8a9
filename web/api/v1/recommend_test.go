package v1

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/optiinfra/perfagent/agent"
	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/cost"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/signalstore"
)

// newPipelineAPI serves the API over a real pipeline that has run one
// cycle at now: a:1 is busy (B2 firing) and queues (B5 pending, its `for`
// is 10m), b:1 is idle.
func newPipelineAPI(t *testing.T) http.Handler {
	t.Helper()
	o, _ := pipelineOptions(t)
	api := New(o)
	r := mux.NewRouter()
	api.Register(r.PathPrefix("/api/v1").Subrouter())
	return validated(t, api, r)
}

// pipelineOptions are the options of newPipelineAPI, with its pipeline.
func pipelineOptions(t *testing.T) (Options, *agent.Pipeline) {
	t.Helper()
	store, err := signalstore.Open(signalstore.Options{Path: t.TempDir(), Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	page, err := os.ReadFile(filepath.Join("testdata", "vllm.prom"))
	if err != nil {
		t.Fatal(err)
	}
	start := now.Add(-5 * time.Minute)
	app := store.Appender(context.Background())
	for at := start; !at.After(now); at = at.Add(15 * time.Second) {
		for _, s := range []struct {
			instance         string
			running, waiting int
			rps              float64
		}{{"a:1", 12, 3, 2}, {"b:1", 2, 0, 0.5}} {
			text := fmt.Sprintf(string(page), s.running, s.waiting, s.rps*at.Sub(start).Seconds())
			if err := collector.AppendExposition(app, []byte(text), at, labels.FromStrings(model.InstanceLabel, s.instance)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	profs, errs := collector.LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	coll := collector.New(collector.Options{Metrics: collector.NewMetrics(prometheus.NewRegistry()), Store: store})
	cfg := config.Default()
	cfg.Instances = []config.InstanceConfig{{Instance: "a:1", Settings: map[string]string{"max_num_seqs": "16"}}, {Instance: "b:1", Settings: map[string]string{"max_num_seqs": "16"}, GPUs: 2}}
	cfg.Cost.GPUHourPrices = map[string]float64{"h100": 4}
	cfg.Cost.DefaultAccelerator = "h100"
	if err := coll.ApplyConfig(cfg, store, profs); err != nil {
		t.Fatal(err)
	}
	mgr := rules.NewManager(rules.ManagerOptions{Queryable: store.DB(), Appendable: store.DB(), QueryFunc: store.QueryFunc(), Engine: store.Engine()})
	if err := mgr.Update([]string{filepath.Join("testdata", "rules.yml")}); err != nil {
		t.Fatal(err)
	}
	rec, err := recommender.New(recommender.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := agent.New(agent.Options{Collector: coll, Store: store, Rules: mgr, Recommender: rec}, agent.Config{Interval: 15 * time.Second, Pricing: cost.NewPricing(&cfg)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pipe.Cycle(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	return Options{Collector: coll, History: store, Rules: mgr, Recommendations: pipe, Now: func() time.Time { return now }, Costs: pipe.Costs,
		Forecasts: func(ctx context.Context, at time.Time) ([]rules.SaturationETA, error) {
			return rules.SaturationETAs(ctx, store, at)
		}}, pipe
}

func TestRecommendEndpoint(t *testing.T) {
	r := newPipelineAPI(t)
	tests := []struct {
		name, body string
		code       int
		// wantErr is in the error of a failed request.
		wantErr string
		// wantIDs are the recommendations' ids and wantSkip the reason of
		// the only skipped entry.
		wantIDs  []string
		wantSkip string
	}{
		{name: "everything firing", body: `{}`, code: 200, wantIDs: []string{"scale_out"}},
		{name: "by id and instance", body: `{"bottleneck":"B2","instance":"a:1"}`, code: 200, wantIDs: []string{"scale_out"}},
		{name: "by rule name", body: `{"bottleneck":"BusyServer"}`, code: 200, wantIDs: []string{"scale_out"}},
		{name: "unknown bottleneck", body: `{"bottleneck":"B42"}`, code: 400,
			wantErr: `bottleneck: "B42" is neither a bottleneck id nor a rule name of the loaded rules; the ids are B2, B5`},
		{name: "nothing active on the instance", body: `{"bottleneck":"B2","instance":"b:1"}`, code: 200, wantIDs: []string{},
			wantSkip: "no active bottleneck B2 on instance b:1"},
		{name: "pending only", body: `{"bottleneck":"B5","instance":"a:1"}`, code: 200, wantIDs: []string{},
			wantSkip: "no firing bottleneck B5 on instance a:1; pending, their rules' `for` not passed yet: LongQueue on a:1"},
		{name: "pending is not a field", body: `{"Pending":true}`, code: 400, wantErr: `unknown field "Pending"`},
		{name: "unknown instance", body: `{"instance":"z:9"}`, code: 404, wantErr: `instance: "z:9" is not known`},
		{name: "cost first", body: `{"objectives":{"prefer":"cost"}}`, code: 200, wantIDs: []string{"scale_out"}},
		{name: "unknown preference", body: `{"objectives":{"prefer":"money"}}`, code: 400, wantErr: `objectives.prefer: "money" is neither latency nor cost`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, env := do(t, r, "POST", "/api/v1/optimization/recommend", tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %+v", code, tc.code, env)
			}
			if tc.wantErr != "" {
				if env.Status != "error" || !strings.Contains(env.Error, tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", env.Error, tc.wantErr)
				}
				return
			}
			var rep struct {
				Recommendations []recommender.Recommendation `json:"recommendations"`
				Skipped         []recommender.Skip           `json:"skipped"`
			}
			if err := json.Unmarshal(env.Data, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Recommendations == nil || rep.Skipped == nil {
				t.Errorf("lists are null, want []: %s", env.Data)
			}
			ids := []string{}
			for _, x := range rep.Recommendations {
				ids = append(ids, x.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") {
				t.Errorf("recommendations %v, want %v: %s", ids, tc.wantIDs, env.Data)
			}
			for _, x := range rep.Recommendations {
				// a:1 (one GPU) and b:1 (two) at 4 per GPU-hour: 12 per hour
				// for two replicas.
				if c := x.Cost; c == nil || c.PerHour.Current != 12 || c.PerHour.Change != 6*float64(x.Action.To-x.Action.From) || c.Basis == "" {
					t.Errorf("%s: cost %+v, want 12 per hour now and 6 per replica added", x.ID, c)
				}
			}
			if tc.wantSkip != "" && (len(rep.Skipped) != 1 || rep.Skipped[0].Reason != tc.wantSkip) {
				t.Errorf("skipped %+v, want one entry %q", rep.Skipped, tc.wantSkip)
			}
		})
	}
}

// TestRuleAndRecommendationReads reads the bottleneck, rule and
// recommendation endpoints of an API over a real rule manager and
// pipeline, filters included.
func TestRuleAndRecommendationReads(t *testing.T) {
	r := newPipelineAPI(t)
	for _, tc := range []struct {
		method, path, body string
		want               []string
	}{
		{"GET", "/api/v1/bottlenecks", "", []string{`"rule":"BusyServer"`, `"active_at":`, `"evidence":`}},
		{"GET", "/api/v1/bottlenecks?state=pending&instance=a:1", "", []string{`"rule":"LongQueue"`}},
		{"GET", "/api/v1/rules", "", []string{`"name":"BusyServer"`, `"health":`, `"evaluation_time_seconds":`, `}],"last_evaluation":"2026-11-01T12:00:00Z"`}},
		{"POST", "/api/v1/analysis/detect-bottlenecks", `{"instances":["a:1"],"rules":["BusyServer"]}`, []string{`"rule":"BusyServer"`, `"time":`}},
		{"GET", "/api/v1/recommendations", "", []string{`"id":"scale_out"`, `"skipped":`, `"cost":{"currency":"USD","per_hour":{"current":12,`}},
		// b:1 has two GPUs configured at 4 an hour each.
		{"GET", "/api/v1/instances/b:1", "", []string{`"cost":{"instance":"b:1","engine":"vllm"`, `"accelerator":"h100","gpus":2,"gpus_source":"config","currency":"USD","per_hour":8`}},
		{"GET", "/api/v1/recommendations?engine=tgi", "", []string{`"recommendations":[]`}},
	} {
		code, env := do(t, r, tc.method, tc.path, tc.body)
		if code != 200 {
			t.Errorf("%s %s = %d %+v", tc.method, tc.path, code, env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(string(env.Data), w) {
				t.Errorf("%s %s: data lacks %s:\n%s", tc.method, tc.path, w, env.Data)
			}
		}
	}
}
