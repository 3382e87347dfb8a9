package web

import (
	"context"
	"errors"
	"html/template"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/optiinfra/perfagent/workflow"
)

// workflowPage renders one workflow for the people an approval alert links
// to: the change, where it stands, the validation results, the events, and
// how to decide.
var workflowPage = template.Must(template.New("workflow").Funcs(template.FuncMap{
	"time": func(t interface{ Format(string) string }) string { return t.Format("2006-01-02 15:04:05 MST") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>perfagent workflow {{.ID}}</title>
<style>body{font-family:sans-serif;max-width:64em;margin:2em auto;line-height:1.4}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}code{background:#eee;padding:0 .2em}.fail{color:#b00}.pass{color:#070}.inconclusive{color:#a60}</style>
</head><body>
<h1>Workflow {{.ID}}</h1>
<p>State: <strong>{{.State}}</strong>. Requested by {{.Requester}}. Proposal hash <code>{{.ProposalHash}}</code>.</p>
{{with .Changed}}<p class="{{if eq $.State.String "needs_attention"}}fail{{end}}">Still changed (not restored): <strong>{{range .}}{{.}} {{end}}</strong></p>{{end}}
<h2>Change</h2>
<table>
<tr><th>recommendation</th><td>{{.Change.RecommendationID}}</td></tr>
<tr><th>engine, model</th><td>{{.Change.Engine}}, {{.Change.Model}}</td></tr>
<tr><th>flag</th><td><code>{{.Change.Flag}}</code> {{.Change.From}} → {{.Change.To}} {{.Change.Unit}}</td></tr>
<tr><th>risk</th><td>{{.Change.Risk}}</td></tr>
<tr><th>evidence</th><td>{{.Change.Evidence}}</td></tr>
<tr><th>pool</th><td>{{range .Pool}}{{.}} {{end}}</td></tr>
</table>
{{with .Current}}<h2>Values before the change</h2>
<table><tr><th>instance</th><th>value</th><th>read from</th></tr>
{{range .}}<tr><td>{{.Instance}}</td><td>{{.Value}}</td><td>{{.Source}}</td></tr>{{end}}
</table>{{end}}
{{with .Instances}}<h2>Instances changed</h2>
<table><tr><th>instance</th><th>stage</th><th>restores to</th><th>applied</th><th>restored</th></tr>
{{range .}}<tr><td>{{.Instance}}</td><td>{{.Stage}}</td><td>{{.From}} ({{.FromSource}})</td><td>{{if not .AppliedAt.IsZero}}{{time .AppliedAt}}{{end}}</td><td>{{if not .RevertedAt.IsZero}}{{time .RevertedAt}}{{else if .Resolved}}by hand, says {{.Resolved.User}}: {{.Resolved.Reason}}{{else}}<span class="fail">no</span>{{end}}</td></tr>{{end}}
</table>{{end}}
<h2>Stages</h2>
<table><tr><th>stage</th><th>instances</th></tr>
{{range .Stages}}<tr><td>{{.Name}}</td><td>{{range .Instances}}{{.}} {{end}}</td></tr>{{end}}
</table>
{{if .Results}}<h2>Validation</h2>
{{range .Results}}<h3>{{.Stage}}: <span class="{{.Verdict}}">{{.Verdict}}</span> ({{.Reason}})</h3>
<p>Canary {{range .Canary}}{{.}} {{end}}({{time .Start}} to {{time .End}}) against {{if .PreChange}}its own window before the change{{else}}{{range .Baseline}}{{.}} {{end}}{{end}} ({{time .BaselineStart}} to {{time .BaselineEnd}}). {{.Basis}}.</p>
{{with .Restarted}}<p class="inconclusive">Restarted during the window, not by this workflow: {{range .}}{{.}} {{end}}</p>{{end}}
<table><tr><th>metric</th><th>verdict</th><th>canary mean</th><th>baseline mean</th><th>p-value</th><th>samples</th><th>before the change (canary / peers)</th><th>reason</th></tr>
{{range .Metrics}}<tr><td>{{.Metric}}</td><td class="{{.Verdict}}">{{.Verdict}}</td><td>{{printf "%.4g" .CanaryMean}}</td><td>{{printf "%.4g" .BaselineMean}}</td><td>{{printf "%.3g" .PValue}}</td><td>{{.CanarySamples}} / {{.BaselineSamples}}</td><td>{{with .PreChange}}{{printf "%.4g" .CanaryMean}} / {{printf "%.4g" .BaselineMean}}{{if not .Comparable}} <span class="fail">not comparable</span>{{end}}{{end}}</td><td>{{.Reason}}</td></tr>{{end}}
</table>{{end}}{{end}}
<h2>Deciding</h2>
<p>An approver who is not the requester decides with the proposal hash:</p>
<pre>curl -u USER -XPOST {{.Base}}/api/v1/workflows/{{.ID}}/approve -d '{"proposal_hash":"{{.ProposalHash}}","comment":"…"}'
curl -u USER -XPOST {{.Base}}/api/v1/workflows/{{.ID}}/reject -d '{"proposal_hash":"{{.ProposalHash}}","comment":"…"}'
curl -u USER -XPOST {{.Base}}/api/v1/workflows/{{.ID}}/rollback -d '{"reason":"…"}'</pre>
{{if eq .State.String "needs_attention"}}<p>The rollback failed for the instances still changed. Retry it with the rollback command above, or, once an instance is put back by hand:</p>
<pre>{{range .Changed}}curl -u USER -XPOST {{$.Base}}/api/v1/workflows/{{$.ID}}/instances/{{.}}/resolve -d '{"reason":"…"}'
{{end}}</pre>{{end}}
<h2>Events</h2>
<table><tr><th>#</th><th>time</th><th>event</th><th>from → to</th><th>actor</th><th>reason</th></tr>
{{range .Events}}<tr><td>{{.Seq}}</td><td>{{time .Time}}</td><td>{{.Type}}</td><td>{{.From}} → {{.To}}</td><td>{{.Actor}}</td><td>{{.Reason}}</td></tr>{{end}}
</table>
</body></html>
`))

func (h *Handler) workflow(w http.ResponseWriter, r *http.Request) {
	if h.o.Workflow == nil {
		http.Error(w, "workflows are not configured", http.StatusNotFound)
		return
	}
	wf, err := h.o.Workflow(r.Context(), mux.Vars(r)["id"])
	if errors.Is(err, workflow.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h.render(w, workflowPage, struct {
		workflow.Workflow
		Base string
	}{wf, h.externalURL()}, "workflow "+wf.ID, "/api/v1/workflows/"+wf.ID)
}

// WorkflowFunc returns one workflow by id, with its events.
type WorkflowFunc func(ctx context.Context, id string) (workflow.Workflow, error)
