package web

import (
	"html/template"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	apiv1 "github.com/optiinfra/perfagent/web/api/v1"
)

// instancePage renders what the agent knows of one instance now; bottleneck
// alerts link to it.
var instancePage = template.Must(template.New("instance").Funcs(template.FuncMap{
	"time": func(t interface{ Format(string) string }) string { return t.Format("2006-01-02 15:04:05 MST") },
	"num":  numText,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>perfagent instance {{.Instance.Instance}}</title>
<style>body{font-family:sans-serif;max-width:64em;margin:2em auto;line-height:1.4}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}code{background:#eee;padding:0 .2em}.critical{color:#b00}.warning{color:#a60}</style>
</head><body>
<h1>Instance {{.Instance.Instance}}</h1>
<p>{{.Instance.Engine}} serving <strong>{{.Instance.Model}}</strong>, as of {{time .Time}}. JSON, with signal history: <a href="{{.Base}}/api/v1/instances/{{.Instance.Instance}}"><code>/api/v1/instances/{{.Instance.Instance}}</code></a>.</p>
<h2>Bottlenecks</h2>
{{with .Bottlenecks}}<table><tr><th>rule</th><th>id</th><th>state</th><th>severity</th><th>since</th><th>summary</th></tr>
{{range .}}<tr><td>{{with .RunbookURL}}<a href="{{.}}">{{end}}{{.Rule}}{{if .RunbookURL}}</a>{{end}}</td><td>{{.ID}}</td><td>{{.State}}</td><td class="{{.Severity}}">{{.Severity}}</td><td>{{time .ActiveAt}}</td><td>{{.Summary}}</td></tr>{{end}}
</table>{{else}}<p>None active.</p>{{end}}
<h2>Recommendations</h2>
{{with .Recommendations}}<table><tr><th>rank</th><th>id</th><th>change</th><th>expected effect</th><th>confidence</th><th>risk</th></tr>
{{range .}}<tr><td>{{.Rank}}</td><td>{{.ID}}</td><td>{{if .Action.Flag}}<code>{{.Action.Flag}}</code> {{.Action.Current}} → {{.Action.Proposed}} {{.Action.Unit}}{{else}}{{.Action.Kind}} {{.Action.From}} → {{.Action.To}}{{end}}</td><td>{{range .Effects}}{{.Signal}}{{with .Quantile}} p{{.}}{{end}} {{.Direction}} ({{num .Current}} → {{num .Estimate}})<br>{{end}}</td><td>{{printf "%.2f" .Confidence}}</td><td>{{.Risk}}</td></tr>{{end}}
</table>{{else}}<p>None.</p>{{end}}
<h2>Signals</h2>
<table><tr><th>signal</th><th>quantile</th><th>value</th></tr>
{{range .Instance.Signals}}<tr><td>{{.Name}}</td><td>{{.Quantile}}</td><td>{{printf "%.4g" .Value}}</td></tr>{{end}}
</table>
<h2>Settings</h2>
<table><tr><th>setting</th><th>value</th><th>read from</th></tr>
{{range $k, $v := .Instance.Settings}}<tr><td>{{$k}}</td><td>{{$v.Value}}</td><td>{{$v.Source}}</td></tr>{{end}}
</table>
</body></html>
`))

// numText is an optional number, "?" when unknown.
func numText(f *float64) string {
	if f == nil {
		return "?"
	}
	return strconv.FormatFloat(*f, 'g', 4, 64)
}

func (h *Handler) instance(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["instance"]
	if h.o.API == nil {
		http.NotFound(w, r)
		return
	}
	s, ok := h.o.API.Summary(name)
	if !ok {
		http.Error(w, "instance "+name+" was not seen in the last collection; /api/v1/instances lists the instances", http.StatusNotFound)
		return
	}
	h.render(w, instancePage, struct {
		apiv1.InstanceSummary
		Base string
	}{s, h.externalURL()}, "instance "+name, "/api/v1/instances/"+name)
}
