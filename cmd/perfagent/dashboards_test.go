package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/optiinfra/perfagent/internal/testutil"
)

// emptyPanels are the panels allowed to show nothing against the test's
// fleet, each with why (for example "only while a rollback runs"). Every
// other panel shows data; an entry whose panel does show data fails the
// test, so the list cannot go stale.
var emptyPanels = map[string]string{
	"Time to saturation": "a forecast needs 12 minutes of growing load; the test's fleet runs for seconds (rules/builtin/tests/forecasts.yml tests the series)",
}

// TestDashboardQueriesReturnData runs every query of every dashboard, with
// Grafana's variables filled in, against two data sources: Debian's
// Prometheus scraping the agent (honor_labels: true), and the agent's own
// query API, while the agent watches a simulated fleet with a bottleneck
// firing, recommendations made, a workflow waiting for approval and
// Alertmanager receiving alerts. A query that does not parse or returns
// nothing fails, unless its panel is in emptyPanels.
func TestDashboardQueriesReturnData(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the agent, a simulated fleet, Prometheus and Alertmanager")
	}
	r := startRollout(t, nil)
	agentAddr := strings.TrimPrefix(r.a.url, "http://")
	promURL := testutil.StartPrometheus(t, fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 900ms}
scrape_configs:
  - job_name: perfagent
    honor_labels: true
    basic_auth: {username: alice, password: pw}
    static_configs: [{targets: [%q]}]
`, agentAddr))

	vars := func(instance string) map[string]string {
		return map[string]string{"job": "perfagent", "engine": ".+", "model": ".+", "instance": instance, "__rate_interval": "15s"}
	}
	dashboardVars := map[string]map[string]string{
		"perfagent-fleet.json":     vars(".+"),
		"perfagent-instance.json":  vars(r.sim.addrs[0]),
		"perfagent-workflows.json": vars(".+"),
		"perfagent-agent.json":     vars(agentAddr),
	}
	files, _ := filepath.Glob("../../dashboards/*.json")
	if len(files) != len(dashboardVars) {
		t.Fatalf("dashboards %v; want one per entry of dashboardVars", files)
	}

	// Rates need a few scrapes of history. Prometheus passes its first
	// targets to the scrapes about 5 s after it starts, so this takes
	// 18-22 s on an idle machine, more when scrapes of a race-built agent
	// time out.
	waitWithin(t, "15 seconds of the agent's metrics in Prometheus", time.Minute, func() bool {
		return len(promQuery(t, promURL, "", `count_over_time(perfagent_build_info{job="perfagent"}[15s]) >= 12`)) > 0
	})
	for _, source := range []struct{ name, url, user string }{{"Prometheus", promURL, ""}, {"the agent", r.a.url, "alice"}} {
		t.Run(source.name, func(t *testing.T) { dashboardQueriesReturnData(t, files, dashboardVars, source.url, source.user) })
	}
}

// dashboardQueriesReturnData runs every query of the dashboard files
// against the Prometheus API at url, as user.
func dashboardQueriesReturnData(t *testing.T, files []string, dashboardVars map[string]map[string]string, url, user string) {
	allowed := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		empty := map[string][]string{}
		for _, dq := range testutil.DashboardQueries(t, b) {
			expr, err := testutil.ExpandGrafanaVars(dq.Expr, dashboardVars[name])
			if err != nil {
				t.Errorf("%s: %s: %v", name, dq.Where, err)
				continue
			}
			if len(promQuery(t, url, user, expr)) == 0 {
				empty[dq.Where] = append(empty[dq.Where], expr)
			}
		}
		var where []string
		for w := range empty {
			where = append(where, w)
		}
		sort.Strings(where)
		for _, w := range where {
			if _, ok := emptyPanels[strings.TrimPrefix(w, "panel ")]; ok {
				allowed[strings.TrimPrefix(w, "panel ")] = true
				continue
			}
			t.Errorf("%s: %s returns nothing:\n  %s", name, w, strings.Join(empty[w], "\n  "))
		}
	}
	for panel := range emptyPanels {
		if !allowed[panel] {
			t.Errorf("panel %q returned data: remove it from emptyPanels", panel)
		}
	}
}

// promQuery runs an instant query as user (none if empty) and returns
// its series.
func promQuery(t *testing.T, promURL, user, expr string) []json.RawMessage {
	t.Helper()
	code, body := do(t, http.MethodGet, promURL+"/api/v1/query?time="+fmt.Sprint(time.Now().Unix())+"&query="+url.QueryEscape(expr), user, "")
	var resp struct {
		Status string
		Error  string
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 {
		t.Fatalf("query %q = %d %s", expr, code, body)
	}
	if resp.Data.ResultType == "scalar" {
		return []json.RawMessage{resp.Data.Result}
	}
	var series []json.RawMessage
	if err := json.Unmarshal(resp.Data.Result, &series); err != nil {
		t.Fatalf("query %q: %v", expr, err)
	}
	return series
}
