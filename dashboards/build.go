package dashboards

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Tag is on every perfagent dashboard; dashboard links find the others by it.
const Tag = "perfagent"

// datasource is the panels' data source: the dashboard's variable, never a
// fixed uid.
var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// spec is one dashboard: its identity, variables, annotations and rows.
type spec struct {
	file, uid, title, description string
	vars                          []cog.Builder[dashboard.VariableModel]
	annotations                   []cog.Builder[dashboard.AnnotationQuery]
	rows                          []row
}

type row struct {
	title  string
	panels []cog.Builder[dashboard.Panel]
}

// build turns s into classic (schema v1) dashboard JSON, which file
// provisioning and mixins expect.
func (s spec) build() ([]byte, error) {
	//lint:ignore SA1019 mixins and file provisioning use the classic dashboard schema, which dashboardv2 replaces.
	b := dashboard.NewDashboardBuilder(s.title).
		Uid(s.uid).
		Description(s.description).
		Tags([]string{Tag}).
		Readonly().
		Refresh("30s").
		Time("now-1h", "now").
		Timezone("browser").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("perfagent").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(queryVariable("job", "Job", "label_values(perfagent_build_info, job)", true))
	for _, v := range s.vars {
		b.WithVariable(v)
	}
	for _, a := range s.annotations {
		b.Annotation(a)
	}
	for _, r := range s.rows {
		b.WithRow(dashboard.NewRowBuilder(r.title))
		for _, p := range r.panels {
			b.WithPanel(p)
		}
	}
	d, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("building dashboard %s: %w", s.uid, err)
	}
	// Panel ids must be unique within a dashboard (links and the editor
	// use them); the builder leaves them unset.
	for i, p := range d.Panels {
		id := uint32(i + 1)
		switch {
		case p.Panel != nil:
			p.Panel.Id = &id
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding dashboard %s: %w", s.uid, err)
	}
	return append(out, '\n'), nil
}

// queryVariable is a variable over label values, refreshed with the time
// range; multi-valued ones offer All as the regex .+.
func queryVariable(name, label, query string, multi bool) *dashboard.QueryVariableBuilder {
	v := dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if multi {
		v.Multi(true).IncludeAll(true).AllValue(".+").Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
			Value:    dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
		})
	}
	return v
}

// query is one PromQL target; refIDs are assigned by the panel helpers.
type query struct {
	expr, legend string
	// instant asks for the value at the end of the range, as tables show.
	instant bool
}

func q(expr, legend string) query { return query{expr: expr, legend: legend} }

func instantQuery(expr string) query { return query{expr: expr, instant: true} }

func targets(qs []query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], len(qs))
	for i, x := range qs {
		b := prometheus.NewDataqueryBuilder().Expr(x.expr).RefId(string(rune('A' + i))).Datasource(datasource)
		if x.legend != "" {
			b.LegendFormat(x.legend)
		}
		if x.instant {
			b.Instant().Format(prometheus.PromQueryFormatTable)
		} else {
			b.Range()
		}
		out[i] = b
	}
	return out
}

// timeSeries is a graph of qs over time.
func timeSeries(title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Unit(unit).
		Datasource(datasource).
		Targets(targets(qs)).
		Span(12).
		Height(8).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true).
			Calcs([]string{"lastNotNull", "max"}))
}

// singleStat is one number (or one per series) from the last value.
func singleStat(title, description, unit string, span uint32, qs ...query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Unit(unit).
		Datasource(datasource).
		Targets(targets(qs)).
		Span(span).
		Height(4).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

// labelTable lists the series of instant queries, one row per series and
// a column per label, without the columns every row shares.
func labelTable(title, description, unit string, qs ...query) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Title(title).
		Description(description).
		Unit(unit).
		Datasource(datasource).
		Targets(targets(qs)).
		Span(24).
		Height(8).
		WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"excludeByName": map[string]bool{"Time": true, "__name__": true, "job": true},
		}})
}
