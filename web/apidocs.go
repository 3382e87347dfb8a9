package web

import (
	"embed"
	"html/template"
	"net/http"
)

// vendored holds the browser assets of web/static/vendor (Swagger UI and
// ReDoc, from the npm registry; scripts/vendor-ui.sh), so the API pages
// work without internet access.
//
//go:embed static/vendor
var vendored embed.FS

// staticFiles serves the vendored assets under /static/: a request's path
// is the embedded file's.
func staticFiles() http.Handler {
	return http.StripPrefix("/", http.FileServerFS(vendored))
}

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
