package dashboards

import (
	"encoding/json"
	"flag"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/optiinfra/perfagent/internal/testutil"
)

var update = flag.Bool("update", false, "write the generated dashboards to the committed JSON files")

// TestGenerated fails when a committed dashboard differs from what the
// code builds; make dashboards (go test -run TestGenerated -update) writes
// them.
func TestGenerated(t *testing.T) {
	got, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, ".", got, "*.json", *update, "run make dashboards")
}

// lintVars are values that make every expression parse, as Grafana's
// would once it has substituted them.
var lintVars = map[string]string{
	"job": "perfagent", "engine": ".+", "model": ".+", "instance": "127.0.0.1:8000",
	"__rate_interval": "1m", "datasource": "prometheus",
}

type dashboardJSON struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Editable   bool   `json:"editable"`
	Tags       []string
	Templating struct {
		List []struct {
			Name, Type string
			Label      string
			Refresh    int
			Datasource *struct{ UID string } `json:"datasource"`
			Multi      bool
			AllValue   string `json:"allValue"`
		}
	}
	Panels []struct {
		ID                       int `json:"id"`
		Type, Title, Description string
		Datasource               *struct{ UID string } `json:"datasource"`
		FieldConfig              struct {
			Defaults struct{ Unit string }
		} `json:"fieldConfig"`
		Targets []struct {
			Expr  string
			RefID string `json:"refId"`
		}
	}
}

var (
	rateRange    = regexp.MustCompile(`\b(rate|irate|increase|changes)\([^\[]*\[([^\]]+)\]`)
	counterUsage = regexp.MustCompile(`(\w*)\(?\s*(\w+_total)\b`)
)

// TestDashboardsFollowTheLinterRules checks what Grafana's
// dashboard-linter checks, and that every query parses as PromQL.
func TestDashboardsFollowTheLinterRules(t *testing.T) {
	got, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]bool{}
	for _, s := range all() {
		b := got[s.file]
		var d dashboardJSON
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		if d.UID != s.uid || !strings.HasPrefix(d.UID, "perfagent-") || uids[d.UID] {
			t.Errorf("%s: uid %q must be stable, unique and start with perfagent-", s.file, d.UID)
		}
		uids[d.UID] = true
		if d.Editable || !slices.Contains(d.Tags, Tag) {
			t.Errorf("%s: editable %v, tags %v; want read-only and tagged %s", s.file, d.Editable, d.Tags, Tag)
		}
		vars := d.Templating.List
		if len(vars) == 0 || vars[0].Name != "datasource" || vars[0].Type != "datasource" || vars[0].Label != "Data source" {
			t.Errorf("%s: the first variable must be the data source", s.file)
		}
		for _, v := range vars[1:] {
			if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != "${datasource}" || v.Refresh != 2 {
				t.Errorf("%s: variable %s must query ${datasource} and refresh on time range changes", s.file, v.Name)
			}
			if v.Multi && v.AllValue != ".+" {
				t.Errorf("%s: multi-valued variable %s needs allValue .+", s.file, v.Name)
			}
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("%s: panel %q has id %d, not a unique one", s.file, p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			where := s.file + ": panel " + p.Title
			if p.Title == "" || p.Description == "" || p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: needs a title, a description and a unit", where)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("%s: needs targets on ${datasource}", where)
			}
		}
		for _, qy := range testutil.DashboardQueries(t, b) {
			where := s.file + ": " + qy.Where
			for _, m := range rateRange.FindAllStringSubmatch(qy.Expr, -1) {
				if m[2] != "$__rate_interval" && m[2] != "1d" {
					t.Errorf("%s: %s over [%s]; use [$__rate_interval] (or a whole day for a daily count)", where, m[1], m[2])
				}
			}
			for _, m := range counterUsage.FindAllStringSubmatch(qy.Expr, -1) {
				if !slices.Contains([]string{"rate", "irate", "increase"}, m[1]) {
					t.Errorf("%s: the counter %s must be read through rate or increase", where, m[2])
				}
			}
			expr, err := testutil.ExpandGrafanaVars(qy.Expr, lintVars)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if _, err := parser.NewParser(parser.Options{}).ParseExpr(expr); err != nil {
				t.Errorf("%s: %q does not parse: %v", where, expr, err)
			}
		}
	}
}
