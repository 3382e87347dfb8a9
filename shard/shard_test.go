package shard

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/optiinfra/perfagent/internal/testutil"
)

func TestNewRefusesImpossibleShards(t *testing.T) {
	for _, tc := range []struct {
		index, count int
		err          string
	}{
		{0, 1, ""},
		{3, 4, ""},
		{0, 0, "shard count 0: it must be at least 1"},
		{0, -2, "shard count -2: it must be at least 1"},
		{-1, 2, "shard index -1: with 2 shards it must be between 0 and 1"},
		{2, 2, "shard index 2: with 2 shards it must be between 0 and 1"},
	} {
		t.Run(fmt.Sprintf("%d of %d", tc.index, tc.count), func(t *testing.T) {
			s, err := New(tc.index, tc.count)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("New = %v", err)
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Fatalf("New = %v, want %q", err, tc.err)
			case err == nil && (s.Index() != tc.index || s.Count() != tc.count):
				t.Fatalf("New = %s", s)
			}
		})
	}
}

// prometheusShard is the relabelling a Prometheus user writes to scrape
// shard index of count, loaded with Prometheus's configuration loader.
func prometheusShard(t *testing.T, index, count int) []*relabel.Config {
	t.Helper()
	cfg, err := promconfig.Load(fmt.Sprintf(`scrape_configs:
  - job_name: fleet
    relabel_configs:
      - source_labels: [instance]
        modulus: %d
        target_label: __tmp_hash
        action: hashmod
      - source_labels: [__tmp_hash]
        regex: "%d"
        action: keep
`, count, index), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.ScrapeConfigs[0].RelabelConfigs
}

// TestOwnsAsPrometheusHashmod checks that every instance has exactly one
// owner, the shard a Prometheus configured with hashmod keeps, and that
// the shards' sizes are about even.
func TestOwnsAsPrometheusHashmod(t *testing.T) {
	var instances []string
	for i := range 1000 {
		instances = append(instances, fmt.Sprintf("10.0.%d.%d:8000", i/250, i%250))
	}
	instances = append(instances, "", "vllm-0.inference.svc:8000", "[::1]:9000")
	for _, count := range []int{1, 2, 3, 7} {
		shards := make([]Shard, count)
		rules := make([][]*relabel.Config, count)
		for i := range count {
			var err error
			if shards[i], err = New(i, count); err != nil {
				t.Fatal(err)
			}
			rules[i] = prometheusShard(t, i, count)
		}
		sizes := make([]int, count)
		for _, inst := range instances {
			owners := 0
			for i, s := range shards {
				keep := relabel.ProcessBuilder(labels.NewBuilder(labels.FromStrings(model.InstanceLabel, inst)), rules[i]...)
				if s.Owns(inst) != keep {
					t.Errorf("%d shards: %s owns %q = %v, Prometheus's hashmod keeps it = %v", count, s, inst, s.Owns(inst), keep)
				}
				if s.Owns(inst) {
					owners++
					sizes[i]++
					if s.Of(inst) != i {
						t.Errorf("%d shards: Of(%q) = %d, owned by %d", count, inst, s.Of(inst), i)
					}
				}
			}
			if owners != 1 {
				t.Errorf("%d shards: %q has %d owners", count, inst, owners)
			}
		}
		for i, n := range sizes {
			if even := len(instances) / count; n < even*8/10 || n > even*12/10 {
				t.Errorf("%d shards: shard %d holds %d of %d instances", count, i, n, len(instances))
			}
		}
	}
}

// TestSameShardsAsDebianPrometheus runs Debian's prometheus with the
// relabelling docs/scaling.md gives for sharding Prometheus, one job per
// shard, and checks that each job scrapes the targets of that shard.
func TestSameShardsAsDebianPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and waits for a scrape")
	}
	const count = 3
	var targets []string
	for i := range 30 {
		// Nothing listens there: every target is down, which still
		// gives it an up series.
		targets = append(targets, fmt.Sprintf("127.0.0.%d:9", i+1))
	}
	var cfg strings.Builder
	cfg.WriteString("global: {scrape_interval: 1s, scrape_timeout: 500ms}\nscrape_configs:\n")
	for i := range count {
		fmt.Fprintf(&cfg, `  - job_name: shard-%d
    static_configs:
      - targets: [%s]
    relabel_configs:
      - source_labels: [__address__]
        target_label: instance
      - source_labels: [instance]
        modulus: %d
        target_label: __tmp_hash
        action: hashmod
      - source_labels: [__tmp_hash]
        regex: "%d"
        action: keep
`, i, strings.Join(targets, ", "), count, i)
	}
	url := testutil.StartPrometheus(t, cfg.String())
	var got map[string]string
	for deadline := time.Now().Add(30 * time.Second); len(got) < len(targets); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus scraped %d of %d targets in 30s", len(got), len(targets))
		}
		got = upJobs(t, url)
	}
	s, err := New(0, count)
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range targets {
		if want := fmt.Sprintf("shard-%d", s.Of(inst)); got[inst] != want {
			t.Errorf("%s: Prometheus scrapes it in %s, want %s", inst, got[inst], want)
		}
	}
}

// upJobs maps each instance of the up series to its job.
func upJobs(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/query?query=up")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range r.Data.Result {
		if prev, dup := out[s.Metric["instance"]]; dup {
			t.Errorf("%s is scraped by %s and %s", s.Metric["instance"], prev, s.Metric["job"])
		}
		out[s.Metric["instance"]] = s.Metric["job"]
	}
	return out
}
