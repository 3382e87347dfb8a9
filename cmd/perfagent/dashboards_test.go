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
	promURL := testutil.StartPrometheus(t, fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
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

	// Rates over $__rate_interval (15s) need a few scrapes in it.
	// Prometheus passes its first targets to the scrapes about 5 s after
	// it starts, and on a loaded machine many scrapes of a race-built
	// agent time out.
	waitWithin(t, "5 scrapes of the agent by Prometheus within 15 seconds", 2*time.Minute, func() bool {
		return len(promQuery(t, promURL, "", `count_over_time(perfagent_build_info{job="perfagent"}[15s]) >= 5`)) > 0
	})
	for _, source := range []struct{ name, url, user string }{{"Prometheus", promURL, ""}, {"the agent", r.a.url, "alice"}} {
		t.Run(source.name, func(t *testing.T) { dashboardQueriesReturnData(t, files, dashboardVars, source.url, source.user) })
	}
}

// dashboardQueriesReturnData runs every query of the dashboard files
// against the Prometheus API at url, as user. A query that returns
// nothing is asked again, once a second for half a minute: on a loaded
// machine a scrape that times out marks every series of its target stale
// until the next one succeeds, in Prometheus and in the agent alike.
func dashboardQueriesReturnData(t *testing.T, files []string, dashboardVars map[string]map[string]string, url, user string) {
	type query struct{ dashboard, where, expr string }
	var pending []query
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		for _, dq := range testutil.DashboardQueries(t, b) {
			expr, err := testutil.ExpandGrafanaVars(dq.Expr, dashboardVars[name])
			if err != nil {
				t.Errorf("%s: %s: %v", name, dq.Where, err)
				continue
			}
			pending = append(pending, query{name, dq.Where, expr})
		}
	}
	allowed := map[string]bool{}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		var empty []query
		for _, q := range pending {
			if len(promQuery(t, url, user, q.expr)) > 0 {
				continue
			}
			// A panel allowed to be empty is asked once: asking again
			// would only wait out the deadline.
			if panel := strings.TrimPrefix(q.where, "panel "); emptyPanels[panel] != "" {
				allowed[panel] = true
				continue
			}
			empty = append(empty, q)
		}
		if pending = empty; len(pending) == 0 || time.Now().After(deadline) {
			break
		}
	}
	byPlace := map[string][]string{}
	var places []string
	for _, q := range pending {
		place := q.dashboard + ": " + q.where
		if byPlace[place] == nil {
			places = append(places, place)
		}
		byPlace[place] = append(byPlace[place], q.expr)
	}
	sort.Strings(places)
	for _, p := range places {
		t.Errorf("%s returns nothing:\n  %s", p, strings.Join(byPlace[p], "\n  "))
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
