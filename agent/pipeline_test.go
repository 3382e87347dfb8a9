package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/optiinfra/perfagent/collector"
	"github.com/optiinfra/perfagent/collector/profiles"
	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/internal/testutil"
	"github.com/optiinfra/perfagent/recommender"
	"github.com/optiinfra/perfagent/rules"
	"github.com/optiinfra/perfagent/signalstore"
)

const interval = 15 * time.Second

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// server is one simulated vLLM server of the fixture.
type server struct {
	instance         string
	running, waiting int
	// rps is the rate of finished requests.
	rps float64
}

// servers: a:1 is busy and queues (BusyServer fires at once, LongQueue
// after its 10m `for`), b:1 is idle. Both serve model m with
// --max-num-seqs 16.
var servers = []server{{"a:1", 12, 3, 2}, {"b:1", 2, 0, 0.5}}

// fixture is a pipeline whose source is a store filled with the servers'
// expositions, as a scrape would fill it.
type fixture struct {
	pipe  *Pipeline
	store *signalstore.Store
	src   *signalstore.Store
	// down makes the collector's source fail, as an unreachable
	// Prometheus does.
	down bool
	// rangeQueried, when set, receives the end of every range query.
	rangeQueried chan time.Time
}

// outageSource is the fixture's source, which fails while f.down.
type outageSource struct{ f *fixture }

func (s outageSource) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	if s.f.down {
		return nil, errors.New("connection refused")
	}
	return s.f.src.Query(ctx, expr, ts)
}

func (s outageSource) QueryRange(ctx context.Context, expr string, from, to time.Time, step time.Duration) (promql.Matrix, error) {
	if s.f.down {
		return nil, errors.New("connection refused")
	}
	if s.f.rangeQueried != nil {
		s.f.rangeQueried <- to
	}
	return s.f.src.QueryRange(ctx, expr, from, to, step)
}

func newFixture(t *testing.T, recommend bool, cfg Config) *fixture {
	t.Helper()
	open := func(name string) *signalstore.Store {
		s, err := signalstore.Open(signalstore.Options{Path: filepath.Join(t.TempDir(), name), Retention: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	f := &fixture{store: open("signals"), src: open("scrapes")}
	profs, errs := collector.LoadProfiles(profiles.FS, ".", nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	coll := collector.New(collector.Options{Metrics: collector.NewMetrics(prometheus.NewRegistry()), Store: f.store})
	ccfg := config.Default()
	ccfg.Global.EvaluationInterval = config.Duration(interval)
	for _, s := range servers {
		ccfg.Instances = append(ccfg.Instances, config.InstanceConfig{Instance: s.instance, Settings: map[string]string{"max_num_seqs": "16"}})
	}
	if err := coll.ApplyConfig(ccfg, outageSource{f}, profs); err != nil {
		t.Fatal(err)
	}
	mgr := rules.NewManager(rules.ManagerOptions{Queryable: f.store.DB(), Appendable: f.store.DB(), QueryFunc: f.store.QueryFunc(), EvaluationInterval: interval})
	if err := mgr.Update([]string{filepath.Join("testdata", "rules.yml")}); err != nil {
		t.Fatal(err)
	}
	o := Options{Collector: coll, Store: f.store, Rules: mgr}
	if recommend {
		rec, err := recommender.New(recommender.Options{})
		if err != nil {
			t.Fatal(err)
		}
		o.Recommender = rec
	}
	if cfg.Interval == 0 {
		cfg.Interval = interval
	}
	p, err := New(o, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.pipe = p
	return f
}

// scrape stores the servers' expositions at every interval of [from, to].
func (f *fixture) scrape(t *testing.T, from, to time.Time) {
	t.Helper()
	f.scrapeServers(t, from, to, servers)
}

// scrapeServers stores the expositions of ss at every interval of [from, to].
func (f *fixture) scrapeServers(t *testing.T, from, to time.Time, ss []server) {
	t.Helper()
	page, err := os.ReadFile(filepath.Join("testdata", "vllm.prom"))
	if err != nil {
		t.Fatal(err)
	}
	app := f.src.Appender(context.Background())
	for at := from; !at.After(to); at = at.Add(interval) {
		for _, s := range ss {
			secs := at.Sub(start).Seconds()
			text := fmt.Sprintf(string(page), s.running, s.waiting, 400*secs, s.rps*secs)
			if err := collector.AppendExposition(app, []byte(text), at, labels.FromStrings(model.InstanceLabel, s.instance, model.JobLabel, "vllm")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func states(bs []rules.Bottleneck) map[string]rules.State {
	out := map[string]rules.State{}
	for _, b := range bs {
		out[b.Rule+" "+b.Instance] = b.State
	}
	return out
}

func TestCycle(t *testing.T) {
	tests := []struct {
		name string
		// history, when set, is evaluated before the cycle at its end.
		history time.Duration
		want    map[string]rules.State
	}{
		{"one cycle", 0, map[string]rules.State{"BusyServer a:1": rules.StateFiring, "LongQueue a:1": rules.StatePending}},
		{"history shorter than the for", 5 * time.Minute, map[string]rules.State{"BusyServer a:1": rules.StateFiring, "LongQueue a:1": rules.StatePending}},
		{"history longer than the for", 12 * time.Minute, map[string]rules.State{"BusyServer a:1": rules.StateFiring, "LongQueue a:1": rules.StateFiring}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, true, Config{SLO: []config.SLOTarget{{Model: "m", TTFTP95: config.Duration(300 * time.Millisecond)}}})
			now := start.Add(15 * time.Minute)
			f.scrape(t, start, now)
			ctx := context.Background()
			if tc.history > 0 {
				if err := f.pipe.EvaluateHistory(ctx, now.Add(-tc.history), now); err != nil {
					t.Fatal(err)
				}
			}
			snap, err := f.pipe.Cycle(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Instances) != len(servers) || !snap.Time.Equal(now) {
				t.Errorf("snapshot at %s with %d instances, want %s and %d", snap.Time, len(snap.Instances), now, len(servers))
			}
			if got := states(f.pipe.Bottlenecks()); !equalMaps(got, tc.want) {
				t.Errorf("bottlenecks = %v, want %v", got, tc.want)
			}
			// The SLO target of the cycle's time was written before the
			// rules ran.
			v, err := f.store.Query(ctx, fmt.Sprintf(`%s{model="m"}`, rules.SLOTTFTP95Series), now)
			if err != nil || len(v) != 1 || v[0].F != 0.3 || v[0].T != now.UnixMilli() {
				t.Errorf("SLO target at the cycle = %v, %v; want 0.3 at %d", v, err, now.UnixMilli())
			}
			// The recommendations of the cycle answer the firing
			// bottlenecks only.
			rep := f.pipe.Latest()
			if len(rep.Recommendations) == 0 {
				t.Fatalf("no recommendations after the cycle; skipped %+v", rep.Skipped)
			}
			for _, r := range rep.Recommendations {
				if r.ID != "scale_out" || !r.Time.Equal(now) {
					t.Errorf("recommendation %s at %s, want scale_out at the cycle's time", r.ID, r.Time)
				}
				if tc.want["LongQueue a:1"] == rules.StatePending && slices.Contains(r.Bottlenecks, "B5") {
					t.Errorf("recommendation %s answers the pending B5: %v", r.ID, r.Bottlenecks)
				}
			}
			if got := f.pipe.LatestRecommendations(); len(got) != len(rep.Recommendations) {
				t.Errorf("LatestRecommendations has %d, Latest %d", len(got), len(rep.Recommendations))
			}
		})
	}
}

// TestSourceOutageKeepsBottlenecks: while the source is down the rules are
// not evaluated, so the bottlenecks keep their state; once it answers
// again they wait Config.Settle before reading its signals. Here a:1
// stops being busy during the outage: the first cycle back sees it at
// once without settling, and only once the settling time has passed with
// it.
func TestSourceOutageKeepsBottlenecks(t *testing.T) {
	idle := []server{{"a:1", 2, 0, 2}, {"b:1", 2, 0, 0.5}}
	tests := []struct {
		name   string
		settle time.Duration
		// want is BusyServer a:1's state at each cycle after the source
		// returns, one interval apart.
		want []rules.State
	}{
		{"no settling", 0, []rules.State{"", "", "", "", ""}},
		{"settles for a minute", time.Minute, []rules.State{rules.StateFiring, rules.StateFiring, rules.StateFiring, rules.StateFiring, ""}},
		{"settles for one interval", interval, []rules.State{rules.StateFiring, "", "", "", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, false, Config{Settle: tc.settle})
			ctx := context.Background()
			now := start.Add(15 * time.Minute)
			f.scrape(t, start, now)
			if _, err := f.pipe.Cycle(ctx, now); err != nil {
				t.Fatal(err)
			}
			before := f.pipe.Bottlenecks()
			if got := states(before)["BusyServer a:1"]; got != rules.StateFiring {
				t.Fatalf("BusyServer a:1 before the outage: %q", got)
			}

			// Five minutes down: every cycle fails, nothing changes.
			f.down = true
			outage := 5 * time.Minute
			f.scrapeServers(t, now.Add(interval), now.Add(outage+5*interval), idle)
			for at := now.Add(interval); !at.After(now.Add(outage)); at = at.Add(interval) {
				if _, err := f.pipe.Cycle(ctx, at); err == nil {
					t.Fatalf("cycle at %s succeeded with the source down", at)
				}
			}
			if got := f.pipe.Bottlenecks(); !slices.EqualFunc(got, before, func(a, b rules.Bottleneck) bool {
				return a.Rule == b.Rule && a.Instance == b.Instance && a.State == b.State && a.ActiveAt.Equal(b.ActiveAt)
			}) {
				t.Errorf("bottlenecks after the outage = %v, want those before it, %v", states(got), states(before))
			}

			f.down = false
			for i, want := range tc.want {
				at := now.Add(outage + time.Duration(i+1)*interval)
				if _, err := f.pipe.Cycle(ctx, at); err != nil {
					t.Fatal(err)
				}
				if got := states(f.pipe.Bottlenecks())["BusyServer a:1"]; got != want {
					t.Errorf("cycle %d back: BusyServer a:1 %q, want %q", i, got, want)
				}
			}
		})
	}
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestCycleWithoutRecommender(t *testing.T) {
	f := newFixture(t, false, Config{})
	now := start.Add(3 * time.Minute)
	f.scrape(t, start, now)
	if _, err := f.pipe.Cycle(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if len(f.pipe.Bottlenecks()) == 0 {
		t.Error("no bottlenecks")
	}
	if rep := f.pipe.Latest(); len(rep.Recommendations)+len(rep.Skipped) > 0 {
		t.Errorf("a pipeline without recommender made %+v", rep)
	}
	if _, err := f.pipe.Recommend(context.Background(), now, RecommendRequest{}); err == nil {
		t.Error("Recommend without a recommender succeeded")
	}
}

func TestCycleFailsWithoutData(t *testing.T) {
	f := newFixture(t, true, Config{Interval: time.Hour})
	if _, err := f.pipe.Recommend(context.Background(), start, RecommendRequest{}); err == nil || !strings.Contains(err.Error(), "no collection") {
		t.Errorf("Recommend before any collection: %v", err)
	}
}

func TestRecommend(t *testing.T) {
	f := newFixture(t, true, Config{Interval: time.Hour})
	now := start.Add(5 * time.Minute)
	f.scrape(t, start, now)
	ctx := context.Background()
	if _, err := f.pipe.Cycle(ctx, now); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  RecommendRequest
		// wantErr is in the RequestError of the bottleneck field.
		wantErr string
		// wantRecs are the ids and bottlenecks of the recommendations.
		wantRecs []string
		// wantSkip is in the reason of the only skipped entry.
		wantSkip    string
		wantPending bool
	}{
		{name: "everything firing", req: RecommendRequest{}, wantRecs: []string{"scale_out [B2]"}},
		{name: "by id", req: RecommendRequest{Bottleneck: "B2", Instance: "a:1"}, wantRecs: []string{"scale_out [B2]"}},
		{name: "by rule name", req: RecommendRequest{Bottleneck: "BusyServer"}, wantRecs: []string{"scale_out [B2]"}},
		{name: "unknown bottleneck", req: RecommendRequest{Bottleneck: "B99"}, wantErr: `"B99" is neither a bottleneck id nor a rule name of the loaded rules; the ids are B2, B5`},
		{name: "nothing active on the instance", req: RecommendRequest{Bottleneck: "B2", Instance: "b:1"}, wantSkip: "no active bottleneck B2 on instance b:1"},
		{name: "nothing active anywhere on an idle instance", req: RecommendRequest{Instance: "b:1"}, wantSkip: "no active bottleneck on instance b:1"},
		{name: "only pending", req: RecommendRequest{Bottleneck: "B5"}, wantSkip: "no firing bottleneck B5 on any instance; pending, their rules' `for` not passed yet: LongQueue on a:1"},
		{name: "pending taken", req: RecommendRequest{Bottleneck: "B5", Pending: true}, wantRecs: []string{"scale_out [B5]"}, wantPending: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := f.pipe.Recommend(ctx, now, tc.req)
			var reqErr *RequestError
			if tc.wantErr != "" {
				if !errors.As(err, &reqErr) || reqErr.Field != "bottleneck" || reqErr.Msg != tc.wantErr {
					t.Errorf("error = %v, want a bottleneck RequestError %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rep.Recommendations {
				got = append(got, fmt.Sprintf("%s %v", r.ID, r.Bottlenecks))
				note := slices.ContainsFunc(r.Notes, func(n string) bool { return strings.HasPrefix(n, "from pending findings") })
				if fp := FromPending(r, f.pipe.Bottlenecks()); note != tc.wantPending || fp != tc.wantPending {
					t.Errorf("%s: note from pending %v, FromPending %v, want %v", r.ID, note, fp, tc.wantPending)
				}
			}
			if !slices.Equal(got, tc.wantRecs) {
				t.Errorf("recommendations = %v, want %v (skipped %+v)", got, tc.wantRecs, rep.Skipped)
			}
			if tc.wantSkip != "" && (len(rep.Skipped) != 1 || rep.Skipped[0].Reason != tc.wantSkip || rep.Skipped[0].Instance != tc.req.Instance) {
				t.Errorf("skipped = %+v, want one entry %q", rep.Skipped, tc.wantSkip)
			}
		})
	}
}

func TestFromPending(t *testing.T) {
	firing := func(id, inst string) rules.Bottleneck {
		return rules.Bottleneck{ID: id, Instance: inst, State: rules.StateFiring}
	}
	pending := func(id, inst string) rules.Bottleneck {
		return rules.Bottleneck{ID: id, Instance: inst, State: rules.StatePending}
	}
	flag := recommender.Recommendation{ID: "lower_max_num_seqs", Instance: "a:1", Bottlenecks: []string{"B1", "B5"}}
	replicas := recommender.Recommendation{ID: "scale_out", Bottlenecks: []string{"B2"}, Action: recommender.Action{Instances: []string{"a:1", "b:1"}}}
	tests := []struct {
		name string
		r    recommender.Recommendation
		bs   []rules.Bottleneck
		want bool
	}{
		{"one of its bottlenecks fires there", flag, []rules.Bottleneck{pending("B1", "a:1"), firing("B5", "a:1")}, false},
		{"all pending", flag, []rules.Bottleneck{pending("B1", "a:1"), pending("B5", "a:1")}, true},
		{"fires elsewhere", flag, []rules.Bottleneck{firing("B1", "b:1"), pending("B1", "a:1")}, true},
		{"another bottleneck fires there", flag, []rules.Bottleneck{firing("B2", "a:1"), pending("B1", "a:1")}, true},
		{"fires on a replica", replicas, []rules.Bottleneck{firing("B2", "b:1")}, false},
		{"fires on no replica", replicas, []rules.Bottleneck{firing("B2", "c:1"), pending("B2", "a:1")}, true},
	}
	for _, tc := range tests {
		if got := FromPending(tc.r, tc.bs); got != tc.want {
			t.Errorf("%s: FromPending = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestApplyConfig(t *testing.T) {
	f := newFixture(t, false, Config{})
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"valid", Config{Interval: time.Minute, SLO: []config.SLOTarget{{Model: "m", ErrorRatio: 0.1}}}, ""},
		{"no interval", Config{}, "evaluation interval must be greater than zero"},
		{"repeated model", Config{Interval: time.Minute, SLO: []config.SLOTarget{{Model: "m"}, {Model: "m"}}}, "model repeated"},
	}
	for _, tc := range tests {
		err := f.pipe.ApplyConfig(tc.cfg)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: ApplyConfig = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	// A failed apply keeps the last good configuration.
	if got := f.pipe.config(); got.Interval != time.Minute || len(got.SLO) != 1 {
		t.Errorf("configuration after a failed apply = %+v", got)
	}
}

func TestRules(t *testing.T) {
	f := newFixture(t, false, Config{})
	want := []Rule{{Name: "BusyServer", Bottleneck: "B2", Interval: 15 * time.Second}, {Name: "LongQueue", Bottleneck: "B5", For: 10 * time.Minute, Interval: 15 * time.Second}}
	if got := f.pipe.Rules(); !slices.Equal(got, want) {
		t.Errorf("Rules = %+v, want %+v", got, want)
	}
}

// Run cycles at the clock's times until its context ends.
func TestRun(t *testing.T) {
	f := newFixture(t, true, Config{Interval: time.Hour})
	now := start.Add(5 * time.Minute)
	f.scrape(t, start, now)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		f.pipe.Run(ctx, func() time.Time { return now }, 0)
		close(done)
	}()
	deadline := time.After(30 * time.Second)
	for len(f.pipe.LatestRecommendations()) == 0 {
		select {
		case <-deadline:
			t.Fatal("no recommendations after Run's first cycle")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
	if r := f.pipe.LatestRecommendations()[0]; !r.Time.Equal(now) {
		t.Errorf("recommendation at %s, want the clock's %s", r.Time, now)
	}
}

// TestRunBackfillsAfterTheFirstCycle: Run computes the history before its
// first cycle only after that cycle, so the agent is ready at once, and
// the store takes the older samples and writes them to disk.
func TestRunBackfillsAfterTheFirstCycle(t *testing.T) {
	f := newFixture(t, false, Config{})
	now := start.Add(10 * time.Minute)
	f.scrape(t, start, now)
	f.rangeQueried = make(chan time.Time, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		f.pipe.Run(ctx, func() time.Time { return now }, 5*time.Minute)
		close(done)
	}()
	select {
	case to := <-f.rangeQueried:
		if last, ok := f.store.MaxTime(); !ok || !last.Equal(now) {
			t.Errorf("history was asked for before the first cycle: the store's newest sample is %v", last)
		}
		if want := now.Add(-interval); !to.Equal(want) {
			t.Errorf("history asked for until %s, want %s (the interval before the first cycle)", to, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no history was asked for")
	}
	go func() { // the backfill's other queries
		for range f.rangeQueried {
		}
	}()
	defer func() {
		cancel()
		<-done
		close(f.rangeQueried)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := f.store.QueryRange(context.Background(), `llm_requests_running{instance="a:1"}`, now.Add(-5*time.Minute), now, interval)
		if err != nil {
			t.Fatal(err)
		}
		// The history is written to a block once backfilled, and reads
		// the same from there.
		if len(m) == 1 && len(m[0].Floats) == 21 && len(f.store.DB().Blocks()) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history of a:1 = %v in %d blocks, want 21 points over the 5 minutes before the first cycle and the cycle, and a block", m, len(f.store.DB().Blocks()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunLogsCycleDuration: Run logs each cycle's duration, at warning
// level when it outlasted the interval.
func TestRunLogsCycleDuration(t *testing.T) {
	for _, tc := range []struct {
		took  time.Duration
		level string
		msg   string
	}{
		{10 * time.Minute, "DEBUG", "Cycle completed"},
		{2 * time.Hour, "WARN", "Cycle outlasted the evaluation interval"},
	} {
		f := newFixture(t, true, Config{Interval: time.Hour})
		now := start.Add(5 * time.Minute)
		f.scrape(t, start, now)
		var buf testutil.SyncBuffer
		f.pipe.logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		var calls atomic.Int64
		// The cycle starts at now and ends tc.took later.
		clock := func() time.Time {
			if calls.Add(1) == 1 {
				return now
			}
			return now.Add(tc.took)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			f.pipe.Run(ctx, clock, 0)
			close(done)
		}()
		deadline := time.After(30 * time.Second)
		for !strings.Contains(buf.String(), "duration=") {
			select {
			case <-deadline:
				t.Fatalf("took %s: no cycle logged after 30 s:\n%s", tc.took, buf.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
		cancel()
		<-done
		if want := "level=" + tc.level + ` msg="` + tc.msg; !strings.Contains(buf.String(), want) || !strings.Contains(buf.String(), "duration="+tc.took.String()) {
			t.Errorf("took %s: log lacks %s and duration=%s:\n%s", tc.took, want, tc.took, buf.String())
		}
	}
}

// TestOwnMetricsStored: after a cycle the store holds the agent's own
// metrics at the cycle's time, with their own labels, and not a second
// copy of the signals or SLO targets the cycle wrote itself.
func TestOwnMetricsStored(t *testing.T) {
	f := newFixture(t, false, Config{SLO: []config.SLOTarget{{Model: "m", TTFTP95: config.Duration(300 * time.Millisecond)}}})
	reg := prometheus.NewRegistry()
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{Name: "perfagent_test_up", Help: "h"}).Set(1)
	promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{Name: "perfagent_test_per_instance", Help: "h"}, []string{"instance"}).WithLabelValues("a:1").Set(2)
	promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{Name: rules.SLOTTFTP95Series, Help: "h"}, []string{"model"}).WithLabelValues("m").Set(9)
	f.pipe.own = prometheus.Gatherers{reg, collector.NewSignalsExporter(f.pipe.coll)}
	f.pipe.settings = collector.NewSettingsExporter(f.pipe.coll)

	now := start.Add(5 * time.Minute)
	f.scrape(t, start, now)
	ctx := context.Background()
	snap, err := f.pipe.Cycle(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	settings := 0
	for _, in := range snap.Instances {
		settings += len(in.Settings)
	}
	if settings == 0 {
		t.Fatal("the fixture's instances have no settings")
	}
	for expr, want := range map[string]string{
		`count(perfagent_setting_info)`:               fmt.Sprintf(`{} %d`, settings),
		`perfagent_test_up`:                           `{__name__="perfagent_test_up"} 1`,
		`perfagent_test_per_instance`:                 `{__name__="perfagent_test_per_instance", instance="a:1"} 2`,
		`count(perfagent_slo_ttft_p95_seconds)`:       `{} 2`,
		`count(llm_requests_waiting{instance="a:1"})`: `{} 1`,
	} {
		v, err := f.store.Query(ctx, expr, now)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range v {
			got = append(got, fmt.Sprintf("%s %g", s.Metric, s.F))
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s = %v, want [%s]", expr, got, want)
		}
	}
}

// TestGeneration: the generation changes once a cycle has run every step,
// at once when a cycle fails (its signals go stale), again when the
// source is back, and when a configuration is put in force.
func TestGeneration(t *testing.T) {
	f := newFixture(t, true, Config{})
	ctx := context.Background()
	now := start.Add(5 * time.Minute)
	f.scrape(t, start, now.Add(time.Hour))
	seen := map[uint64]bool{f.pipe.Generation(): true}
	next := func(what string) {
		t.Helper()
		g := f.pipe.Generation()
		if seen[g] {
			t.Errorf("%s: generation %d again", what, g)
		}
		seen[g] = true
	}
	if _, err := f.pipe.Cycle(ctx, now); err != nil {
		t.Fatal(err)
	}
	next("first cycle")
	if g := f.pipe.Generation(); g != f.pipe.Generation() {
		t.Error("generation changed without a cycle")
	}
	if _, err := f.pipe.Cycle(ctx, now.Add(interval)); err != nil {
		t.Fatal(err)
	}
	next("second cycle")
	f.down = true
	if _, err := f.pipe.Cycle(ctx, now.Add(2*interval)); err == nil {
		t.Fatal("cycle succeeded with the source down")
	}
	next("failed cycle")
	f.down = false
	if _, err := f.pipe.Cycle(ctx, now.Add(3*interval)); err != nil {
		t.Fatal(err)
	}
	next("cycle after the outage")
	f.pipe.Reloaded()
	next("reload")
	if _, err := f.pipe.Cycle(ctx, now.Add(4*interval)); err != nil {
		t.Fatal(err)
	}
	next("cycle after the reload")
}
