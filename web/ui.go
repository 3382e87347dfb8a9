package web

import (
	"embed"
	"net/http"
	"net/url"
)

// assets holds the web UI (web/ui: one HTML shell, its script and
// stylesheet, which render every page in the browser from the API) and the
// browser libraries vendored from the npm registry (web/static/vendor:
// Swagger UI, ReDoc, uPlot; scripts/vendor-ui.sh), so that nothing is
// loaded from the internet. A request's path is the embedded file's.
//
//go:embed ui static/vendor
var assets embed.FS

// uiPages are the UI's page routes; each serves the shell, which renders
// the page the path names. Alerts link to the instance and workflow pages.
var uiPages = []string{"/", "/instances/{instance}", "/workflows", "/workflows/{id}", "/bottlenecks", "/recommendations", "/rules", "/status"}

// InstancePath is the path of an instance's page below the agent's URL,
// where bottleneck alerts link to.
func InstancePath(instance string) string {
	return "/instances/" + url.PathEscape(instance)
}

func (h *Handler) uiShell(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("ui/index.html")
	if err != nil {
		http.Error(w, "the UI is missing from this build: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}
