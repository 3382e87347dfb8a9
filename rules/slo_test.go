package rules

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/optiinfra/perfagent/config"
	"github.com/optiinfra/perfagent/signals"
)

func TestAppendSLOTargets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets []config.SLOTarget
		want    []string
		wantErr string
	}{
		{
			name: "no targets: built-in defaults",
			want: []string{
				`perfagent_slo_error_ratio 0.05`,
				`perfagent_slo_itl_p95_seconds 0.05`,
				`perfagent_slo_ttft_p95_seconds 0.5`,
			},
		},
		{
			name: "configured default overrides field by field, models keep their own fields",
			targets: []config.SLOTarget{
				{TTFTP95: config.Duration(time.Second)},
				{Model: "big", TTFTP95: config.Duration(2 * time.Second), ErrorRatio: 0.01},
			},
			want: []string{
				`perfagent_slo_error_ratio 0.05`,
				`perfagent_slo_error_ratio{model="big"} 0.01`,
				`perfagent_slo_itl_p95_seconds 0.05`,
				`perfagent_slo_ttft_p95_seconds 1`,
				`perfagent_slo_ttft_p95_seconds{model="big"} 2`,
			},
		},
		{
			name:    "repeated model",
			targets: []config.SLOTarget{{Model: "m", ErrorRatio: 0.1}, {Model: "m", ErrorRatio: 0.2}},
			wantErr: `slo target 1 (model "m"): model repeated`,
		},
		{
			name:    "out of range",
			targets: []config.SLOTarget{{Model: "m", ErrorRatio: 2, ITLP95: config.Duration(-time.Second)}},
			wantErr: `slo target 0 (model "m"): latency targets must not be negative` + "\n" + `slo target 0 (model "m"): error_ratio must be between 0 and 1`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t, t.TempDir())
			app := store.Appender(context.Background())
			err := AppendSLOTargets(app, t0.UnixMilli(), tc.targets)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				_ = app.Rollback()
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range query(t, store, `{__name__=~"perfagent_slo_.*"}`, t0) {
				series := s.Metric.Get(model.MetricNameLabel)
				if m := s.Metric.Get(signals.LabelModel); m != "" {
					series += `{model="` + m + `"}`
				}
				got = append(got, series+" "+strconv.FormatFloat(s.F, 'g', -1, 64))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("series:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
		})
	}
}

func TestSLOTargetsCollector(t *testing.T) {
	c := NewSLOTargetsCollector(func() []config.SLOTarget {
		return []config.SLOTarget{{Model: "llama", TTFTP95: config.Duration(time.Second)}, {ITLP95: config.Duration(20 * time.Millisecond)}}
	})
	want := `# HELP perfagent_slo_ttft_p95_seconds SLO target of the 95th percentile of time to first token, in seconds, by model (empty: the default).
# TYPE perfagent_slo_ttft_p95_seconds gauge
perfagent_slo_ttft_p95_seconds{model=""} 0.5
perfagent_slo_ttft_p95_seconds{model="llama"} 1
# HELP perfagent_slo_itl_p95_seconds SLO target of the 95th percentile of inter-token latency, in seconds, by model (empty: the default).
# TYPE perfagent_slo_itl_p95_seconds gauge
perfagent_slo_itl_p95_seconds{model=""} 0.02
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), SLOTTFTP95Series, SLOITLP95Series); err != nil {
		t.Error(err)
	}
}

func TestSLOTargetsFor(t *testing.T) {
	targets := []config.SLOTarget{{Model: "llama", TTFTP95: config.Duration(time.Second)}, {ITLP95: config.Duration(20 * time.Millisecond)}}
	for _, tc := range []struct {
		model     string
		ttft, itl time.Duration
		errRatio  float64
	}{
		{"llama", time.Second, 20 * time.Millisecond, DefaultErrorRatio},
		{"other", DefaultTTFTP95, 20 * time.Millisecond, DefaultErrorRatio},
	} {
		ttft, itl, e, err := SLOTargetsFor(targets, tc.model)
		if err != nil || ttft != tc.ttft || itl != tc.itl || e != tc.errRatio {
			t.Errorf("%s: %v %v %v %v, want %v %v %v", tc.model, ttft, itl, e, err, tc.ttft, tc.itl, tc.errRatio)
		}
	}
}
