package rules

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/optiinfra/perfagent/signals"
	"github.com/optiinfra/perfagent/signalstore"
)

func TestModelLocal(t *testing.T) {
	for _, tc := range []struct {
		expr  string
		local bool
	}{
		{`llm_requests_waiting > 5`, true},
		{`avg_over_time(llm_requests_waiting[5m]) and on (model) (min by (model) (llm_requests_waiting) == 0)`, true},
		{`llm_requests_waiting > on (model) group_left () perfagent_slo_ttft_p95_seconds`, true},
		{`llm_requests_waiting > scalar(perfagent_slo_ttft_p95_seconds{model=""})`, true},
		{`sum without (instance) (llm_requests_waiting)`, true},
		{`llm_requests_waiting > on () group_left () scalar(perfagent_slo_ttft_p95_seconds{model=""}) * vector(1)`, true},
		{`llm_requests_waiting > on () group_left () perfagent_slo_ttft_p95_seconds{model=""}`, true},
		{`sum(llm_requests_waiting) > 5`, false},
		{`max by (engine) (llm_requests_waiting) > 5`, false},
		{`count without (model) (llm_requests_waiting) > 5`, false},
		{`llm_requests_waiting and on () perfagent_slo_ttft_p95_seconds{model=""} > 1`, true},
		{`llm_requests_waiting > on (instance) group_left () llm_requests_running`, false},
		{`perfagent_slo_ttft_p95_seconds{model=""} > on () group_right () llm_requests_running`, true},
		{`perfagent_slo_ttft_p95_seconds{model=""} > on () group_left () llm_requests_running`, false},
		{`llm_requests_waiting or on () perfagent_slo_ttft_p95_seconds{model=""}`, false},
		{`perfagent_slo_ttft_p95_seconds{model=""} and on () llm_requests_running`, false},
		{`llm_requests_waiting unless ignoring (model) llm_requests_running`, false},
		{`llm_requests_waiting > scalar(perfagent_slo_ttft_p95_seconds)`, false},
		{`absent(llm_requests_waiting{model="m"})`, false},
		{`label_replace(llm_requests_waiting, "model", "x", "", "")`, false},
		{`label_replace(llm_requests_waiting, "pool", "$1", "model", "(.*)")`, true},
		{`count_values by (model) ("model", llm_requests_waiting)`, false},
		{`max_over_time(perfagent_slo_ttft_p95_seconds{model=""}[5m]) > on () group_left () llm_requests_running`, false},
		{`llm_requests_waiting > on () group_left () max_over_time(perfagent_slo_ttft_p95_seconds{model=""}[5m])`, true},
	} {
		expr, err := newParser().ParseExpr(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := modelLocal(expr); got != tc.local {
			t.Errorf("modelLocal(%s) = %v, want %v", tc.expr, got, tc.local)
		}
	}
	// The built-in rules compare an instance with its model's replicas
	// only, so a detection for some instances reads their models only.
	files, errs := NewLoader(LoaderOptions{}).Load(BuiltinFiles())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if !modelLocalFiles(files) {
		t.Error("a built-in rule mixes the series of several models")
	}
}

// readRecorder is a Queryable that records the series it gives out.
type readRecorder struct {
	storage.Queryable
	mtx    sync.Mutex
	models map[string]int
}

func (r *readRecorder) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := r.Queryable.Querier(mint, maxt)
	return recordingQuerier{Querier: q, r: r}, err
}

type recordingQuerier struct {
	storage.Querier
	r *readRecorder
}

func (q recordingQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return recordingSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...), r: q.r}
}

type recordingSet struct {
	storage.SeriesSet
	r *readRecorder
}

func (s recordingSet) At() storage.Series {
	sr := s.SeriesSet.At()
	s.r.mtx.Lock()
	s.r.models[sr.Labels().Get(signals.LabelModel)]++
	s.r.mtx.Unlock()
	return sr
}

func (s recordingSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

// recordingManager is a manager with the built-in rules over store,
// whose reads rec records.
func recordingManager(t testing.TB, store *signalstore.Store) (*Manager, *readRecorder) {
	rec := &readRecorder{Queryable: store.DB(), models: map[string]int{}}
	m := NewManager(ManagerOptions{Queryable: rec, Appendable: store.DB(), Engine: store.Engine(),
		QueryFunc: promrules.EngineQueryFunc(store.Engine(), rec)})
	if err := m.Update(BuiltinFiles()); err != nil {
		t.Fatal(err)
	}
	return m, rec
}

// TestDetectNarrowedToModel: a detection for one instance reads the
// series of its model (every engine's replicas: B10 compares them) and
// finds what the evaluation of the whole fleet finds for it.
func TestDetectNarrowedToModel(t *testing.T) {
	store := openStore(t, t.TempDir())
	// a:1 (vLLM) queues while b:1, an SGLang replica of the same model,
	// is idle: B10. c:1 and d:1 serve another model and both queue.
	for i := range 61 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		var ps []point
		for _, s := range []struct {
			instance, engine, model string
			waiting                 float64
		}{{"a:1", "vllm", "m", 12}, {"b:1", "sglang", "m", 0}, {"c:1", "vllm", "n", 9}, {"d:1", "vllm", "n", 7}} {
			ps = append(ps,
				point{signal("llm_requests_waiting", s.instance, s.engine, s.model), s.waiting},
				point{signal("llm_requests_running", s.instance, s.engine, s.model), 8},
				point{signal("llm_kv_cache_usage_ratio", s.instance, s.engine, s.model), 0.5})
		}
		appendAt(t, store, ts, ps...)
	}
	m, rec := recordingManager(t, store)
	ctx, at := context.Background(), t0.Add(15*time.Minute)

	fleet, err := m.Detect(ctx, at, DetectOptions{Instances: []string{"a:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.models["n"] == 0 {
		t.Fatal("the fleet's evaluation read no series of model n: the recorder sees nothing")
	}
	var rules []string
	for _, b := range fleet {
		rules = append(rules, b.Rule)
	}
	if fmt.Sprint(rules) != "[LLMLoadImbalance]" {
		t.Fatalf("fleet-wide bottlenecks of a:1 = %v, want LLMLoadImbalance (B10) only", rules)
	}

	rec.models = map[string]int{}
	narrowed, err := m.Detect(ctx, at, DetectOptions{Instances: []string{"a:1"}, Models: []string{"m"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(narrowed, fleet) {
		t.Errorf("narrowed to model m:\n%+v\nwant the fleet-wide result:\n%+v", narrowed, fleet)
	}
	if rec.models["n"] != 0 || rec.models["m"] == 0 {
		t.Errorf("narrowed to model m, the evaluation read series by model %v, want m's (and model-less ones) only", rec.models)
	}
}

// BenchmarkDetectOneInstance evaluates the built-in rules for one
// instance of 300 (30 models of 10 replicas) over the whole fleet and
// narrowed to its model.
func BenchmarkDetectOneInstance(b *testing.B) {
	store := openStore(b, b.TempDir())
	const models, replicas = 30, 10
	for i := range 81 {
		ts := t0.Add(time.Duration(i) * 15 * time.Second)
		var ps []point
		for mi := range models {
			for r := range replicas {
				in, mdl := fmt.Sprintf("i-%02d-%d:8000", mi, r), fmt.Sprintf("model-%02d", mi)
				waiting := float64((mi + r) % 7)
				ps = append(ps,
					point{signal("llm_requests_waiting", in, "vllm", mdl), waiting},
					point{signal("llm_requests_running", in, "vllm", mdl), 8},
					point{signal("llm_kv_cache_usage_ratio", in, "vllm", mdl), 0.1 * float64(r)},
					point{signal("llm_preemptions_per_second", in, "vllm", mdl), float64(r % 2)},
					point{signal("llm_request_error_ratio", in, "vllm", mdl), 0.01})
			}
		}
		appendAt(b, store, ts, ps...)
	}
	m, _ := recordingManager(b, store)
	ctx, at := context.Background(), t0.Add(20*time.Minute)
	for _, bc := range []struct {
		name string
		o    DetectOptions
	}{
		{"fleet", DetectOptions{Instances: []string{"i-07-3:8000"}}},
		{"model", DetectOptions{Instances: []string{"i-07-3:8000"}, Models: []string{"model-07"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := m.Detect(ctx, at, bc.o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
