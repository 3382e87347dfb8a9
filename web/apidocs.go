package web

import (
	"html/template"
	"net/http"
)

// apiDocsPage renders Swagger UI or ReDoc over the agent's own OpenAPI
// description, from the embedded assets. Links are relative, so the pages
// work behind a path prefix.
var apiDocsPage = template.Must(template.New("apidocs").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>perfagent API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Swagger}}<link rel="stylesheet" href="static/vendor/swagger-ui/swagger-ui.css">{{end}}
</head><body>
{{if .Swagger}}<div id="swagger-ui"></div>
<script src="static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "api/v1/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
{{else}}<div id="redoc"></div>
<script src="static/vendor/redoc/redoc.standalone.js"></script>
<script>
Redoc.init("api/v1/openapi.json", {hideDownloadButton: false}, document.getElementById("redoc"));
</script>
{{end}}</body></html>
`))

func (h *Handler) apiDocs(swagger bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.render(w, apiDocsPage, struct{ Swagger bool }{swagger}, "the API documentation", "/api/v1/openapi.json")
	}
}
