package workflow

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	const canary = "c1"
	scale := func(sig string, factor float64) func(string, string, time.Time, time.Time) ([]float64, error) {
		return func(signal, inst string, s, e time.Time) ([]float64, error) {
			v, _ := healthy(signal, inst, s, e)
			if signal == sig && inst == canary {
				for i := range v {
					v[i] *= factor
				}
			}
			return v, nil
		}
	}
	shiftErrors := func(delta float64) func(string, string, time.Time, time.Time) ([]float64, error) {
		return func(signal, inst string, s, e time.Time) ([]float64, error) {
			v, _ := healthy(signal, inst, s, e)
			if signal == "llm_request_error_ratio" && inst == canary {
				for i := range v {
					v[i] += delta
				}
			}
			return v, nil
		}
	}
	ttft := `llm_time_to_first_token_seconds{quantile="0.95"}`
	cases := []struct {
		name      string
		fn        func(string, string, time.Time, time.Time) ([]float64, error)
		verdict   Verdict
		metric    string
		mVerdict  Verdict
		reason    string
		critical  bool
		queryFail bool
	}{
		{"same distributions", healthy, VerdictPass, ttft, VerdictPass, "no significant difference", false, false},
		{"latency regression", scale("llm_time_to_first_token_seconds", 1.3), VerdictFail, ttft, VerdictFail, "significant regression beyond the allowed effect", false, false},
		{"latency within allowance", scale("llm_time_to_first_token_seconds", 1.05), VerdictPass, ttft, VerdictPass, "significant change within the allowed effect", false, false},
		{"latency critical", scale("llm_time_to_first_token_seconds", 1.6), VerdictFail, ttft, VerdictFail, "critical regression", true, false},
		{"target improved", scale("llm_queue_time_seconds", 0.5), VerdictPass, `llm_queue_time_seconds{quantile="0.95"}`, VerdictPass, "significant improvement", false, false},
		{"target worse at all", scale("llm_queue_time_seconds", 1.05), VerdictFail, `llm_queue_time_seconds{quantile="0.95"}`, VerdictFail, "significant regression beyond the allowed effect", false, false},
		{"error ratio critical", shiftErrors(0.03), VerdictFail, "llm_request_error_ratio", VerdictFail, "critical regression", true, false},
		{"error ratio within delta", shiftErrors(0.003), VerdictPass, "llm_request_error_ratio", VerdictPass, "significant change within the allowed effect", false, false},
		{"canary no data", func(signal, inst string, s, e time.Time) ([]float64, error) {
			if signal == "llm_inter_token_latency_seconds" && inst == canary {
				return nil, nil
			}
			return healthy(signal, inst, s, e)
		}, VerdictInconclusive, `llm_inter_token_latency_seconds{quantile="0.95"}`, VerdictInconclusive, "no data: 0 canary and 60 baseline samples, 20 needed", false, false},
		{"too few samples", func(signal, inst string, s, e time.Time) ([]float64, error) {
			v, _ := healthy(signal, inst, s, e)
			if signal == "llm_inter_token_latency_seconds" && inst == canary {
				v = v[:10]
			}
			return v, nil
		}, VerdictInconclusive, `llm_inter_token_latency_seconds{quantile="0.95"}`, VerdictInconclusive, "no data: 10 canary and 60 baseline samples, 20 needed", false, false},
		{"NaN is no data", func(signal, inst string, s, e time.Time) ([]float64, error) {
			v, _ := healthy(signal, inst, s, e)
			if signal == "llm_inter_token_latency_seconds" && inst == canary {
				for i := range v {
					v[i] = math.NaN()
				}
			}
			return v, nil
		}, VerdictInconclusive, `llm_inter_token_latency_seconds{quantile="0.95"}`, VerdictInconclusive, "no data: 0 canary and 60 baseline samples, 20 needed", false, false},
		{"query error", func(signal, inst string, s, e time.Time) ([]float64, error) {
			if signal == "llm_request_error_ratio" && inst == canary {
				return nil, errors.New("prometheus down")
			}
			return healthy(signal, inst, s, e)
		}, VerdictInconclusive, "llm_request_error_ratio", VerdictInconclusive, "query error", false, true},
		{"traffic skew", scale("llm_requests_per_second", 2), VerdictInconclusive, "traffic_share(llm_requests_per_second)", VerdictInconclusive, "offered request rate per instance (finished, plus the growth of running and waiting requests) differs by more than 30 %", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Before the change (t0) canary and peers match; the case's
			// effect shows in the window after it.
			afterChange := func(signal, inst string, s, e time.Time) ([]float64, error) {
				if s.Before(t0) {
					return healthy(signal, inst, s, e)
				}
				return tc.fn(signal, inst, s, e)
			}
			v := NewValidator(ValidatorOptions{Source: &fakeSource{rangeFn: afterChange}})
			change := Change{Targets: []Target{{Signal: "llm_queue_time_seconds", Quantile: "0.95", Expected: DirectionDecrease}}}
			r := v.Validate(context.Background(), Comparison{
				Stage: "stage-1", Engine: "vllm", Model: "m", Canary: []string{canary}, Peers: []string{"b1", "b2"},
				Start: t0, End: t0.Add(15 * time.Minute), PreStart: t0.Add(-15 * time.Minute), PreEnd: t0,
				Metrics: MetricsFor(change),
			}, t0)
			if r.Verdict != tc.verdict {
				t.Fatalf("verdict = %s (%s), want %s", r.Verdict, r.Reason, tc.verdict)
			}
			if r.QueryFailed() != tc.queryFail {
				t.Fatalf("QueryFailed = %v", r.QueryFailed())
			}
			if len(r.Metrics) != 6 {
				t.Fatalf("%d metric results, want 5 metrics and the traffic check", len(r.Metrics))
			}
			for _, m := range r.Metrics {
				if m.Metric != tc.metric {
					continue
				}
				if m.Verdict != tc.mVerdict || m.Reason != tc.reason || m.Critical != tc.critical {
					t.Fatalf("metric %s = %s %q critical=%v, want %s %q critical=%v", m.Metric, m.Verdict, m.Reason, m.Critical, tc.mVerdict, tc.reason, tc.critical)
				}
				if tc.verdict != VerdictPass && !strings.Contains(r.Reason, tc.metric) {
					t.Fatalf("stage reason %q does not name %s", r.Reason, tc.metric)
				}
				return
			}
			t.Fatalf("no result for %s", tc.metric)
		})
	}
}

func TestMetricsFor(t *testing.T) {
	got := MetricsFor(Change{Targets: []Target{
		{Signal: "llm_time_to_first_token_seconds", Quantile: "0.95", Expected: DirectionDecrease},
		{Signal: "llm_generation_tokens_per_second", Expected: DirectionIncrease},
	}})
	want := []string{
		`llm_time_to_first_token_seconds{quantile="0.95"}`, "llm_generation_tokens_per_second",
		"llm_request_error_ratio", `llm_inter_token_latency_seconds{quantile="0.95"}`, "llm_requests_waiting",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d metrics, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name() != want[i] {
			t.Fatalf("metric %d = %s, want %s", i, got[i].Name(), want[i])
		}
	}
	if !got[0].Target || got[0].AllowedRatio != 1.0 || got[0].Bad != DirectionIncrease {
		t.Fatalf("target spec = %+v", got[0])
	}
	if got[1].Bad != DirectionDecrease || got[1].CriticalRatio != 0.5 {
		t.Fatalf("throughput target spec = %+v", got[1])
	}
}

func TestValidatorQueries(t *testing.T) {
	src := &fakeSource{rangeFn: healthy}
	v := NewValidator(ValidatorOptions{Source: src})
	end := t0.Add(15 * time.Minute)
	v.Validate(context.Background(), Comparison{
		Engine: "vllm", Model: "llama-3", Canary: []string{"10.0.0.1:8000"}, Peers: []string{"10.0.0.3:8000", "10.0.0.2:8000"},
		Start: t0, End: end, PreStart: t0.Add(-15 * time.Minute), PreEnd: t0,
		Metrics: []MetricSpec{{Signal: "llm_time_to_first_token_seconds", Quantile: "0.95", Bad: DirectionIncrease, AllowedRatio: 1.1}},
	}, end)
	// The pre-change comparison with the peers, then the window itself,
	// then the canary's counter resets.
	want := []string{
		`avg(llm_time_to_first_token_seconds{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.1:8000",quantile="0.95"})`,
		`avg(llm_time_to_first_token_seconds{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.2:8000|10\\.0\\.0\\.3:8000",quantile="0.95"})`,
		`avg(llm_requests_per_second{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.1:8000"})`,
		`avg(llm_requests_per_second{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.2:8000|10\\.0\\.0\\.3:8000"})`,
		`avg(llm_time_to_first_token_seconds{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.1:8000",quantile="0.95"})`,
		`avg(llm_time_to_first_token_seconds{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.2:8000|10\\.0\\.0\\.3:8000",quantile="0.95"})`,
		`avg(llm_requests_per_second{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.1:8000"})`,
		`avg(llm_requests_per_second{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.2:8000|10\\.0\\.0\\.3:8000"})`,
		`avg(llm_requests_running{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.1:8000"})`,
		`avg(llm_requests_waiting{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.1:8000"})`,
		`avg(llm_requests_running{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.2:8000|10\\.0\\.0\\.3:8000"})`,
		`avg(llm_requests_waiting{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.2:8000|10\\.0\\.0\\.3:8000"})`,
		`max by (instance) (llm_engine_restarts{engine="vllm",model="llama-3",instance=~"10\\.0\\.0\\.1:8000"}) > 0`,
	}
	if strings.Join(src.exprs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("queries\n%s\nwant\n%s", strings.Join(src.exprs, "\n"), strings.Join(want, "\n"))
	}
}

// A canary whose raised capacity drains its queue finishes more requests
// than before while the same traffic arrives: the traffic check counts the
// drained queue and passes; the same finished rate without a draining
// queue is more traffic, and is inconclusive.
func TestValidatorTrafficCountsADrainingQueue(t *testing.T) {
	ramp := func(from, to float64) []float64 {
		out := make([]float64, 60)
		for i := range out {
			out[i] = from + (to-from)*float64(i)/59
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		drain bool
		want  Verdict
	}{
		{"queue drains", true, VerdictPass},
		{"more traffic", false, VerdictInconclusive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 15-minute windows: before the change 4 finished/s while
			// the queue grows by 1/s (5 arrive); after it 6 finish/s.
			src := &fakeSource{rangeFn: func(signal, inst string, s, e time.Time) ([]float64, error) {
				before := s.Before(t0)
				switch {
				case signal == "llm_requests_per_second" && before:
					return noisy(4, 60), nil
				case signal == "llm_requests_per_second":
					return noisy(6, 60), nil
				case signal == "llm_requests_waiting" && before:
					return ramp(0, 900), nil
				case signal == "llm_requests_waiting" && tc.drain:
					return ramp(900, 0), nil
				case signal == "llm_requests_waiting":
					return ramp(900, 1800), nil
				}
				return healthy(signal, inst, s, e)
			}}
			r := NewValidator(ValidatorOptions{Source: src}).Validate(context.Background(), Comparison{
				Engine: "vllm", Model: "m", Canary: []string{"a"},
				Start: t0, End: t0.Add(15 * time.Minute), PreStart: t0.Add(-15 * time.Minute), PreEnd: t0,
			}, t0.Add(15*time.Minute))
			tr := r.Metrics[len(r.Metrics)-1]
			if tr.Verdict != tc.want {
				t.Fatalf("traffic %s (%s: canary %.2f/s, baseline %.2f/s), want %s", tr.Verdict, tr.Reason, tr.CanaryMean, tr.BaselineMean, tc.want)
			}
		})
	}
}
