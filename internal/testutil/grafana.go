package testutil

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
)

// DashboardQuery is one PromQL expression of a Grafana dashboard: a
// panel's target, a variable's query or an annotation's.
type DashboardQuery struct {
	// Where names it: "panel <title>", "variable <name>" or
	// "annotation <name>".
	Where string
	Expr  string
	// Instant is a target that asks for one value (tables).
	Instant bool
}

// DashboardQueries lists every PromQL expression of a dashboard's JSON,
// panels inside collapsed rows included. Variables' label_values(expr,
// label) give their expr.
func DashboardQueries(t testing.TB, dashboardJSON []byte) []DashboardQuery {
	t.Helper()
	var d struct {
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		t.Fatalf("decoding dashboard: %v", err)
	}
	var out []DashboardQuery
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, DashboardQuery{Where: "panel " + p.Title, Expr: tg.Expr, Instant: tg.Instant})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		s, _ := v.Query.(string)
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(expr, label)", v.Name, s)
			continue
		}
		out = append(out, DashboardQuery{Where: "variable " + v.Name, Expr: m[1], Instant: true})
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, DashboardQuery{Where: "annotation " + a.Name, Expr: a.Expr})
		}
	}
	return out
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr    string `json:"expr"`
		Instant bool   `json:"instant"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

var (
	labelValues = regexp.MustCompile(`^label_values\((.+), *\w+\)$`)
	grafanaVar  = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)
)

// ExpandGrafanaVars replaces $name and ${name} in expr with vars[name];
// an unknown variable is an error.
func ExpandGrafanaVars(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for the variables %v", missing)
	}
	return out, nil
}
