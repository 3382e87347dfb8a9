package web

import (
	"embed"
	"net/http"
	"net/url"
)

// ui holds the web UI (web/ui: one HTML shell, its script and stylesheet),
// which renders every page in the browser from the API.
//
//go:embed ui
var ui embed.FS

// uiPages are the UI's page routes; each serves the shell, which renders
// the page the path names. Alerts link to the instance and workflow pages.
var uiPages = []string{"/", "/instances/{instance}", "/workflows", "/workflows/{id}", "/bottlenecks", "/recommendations", "/rules", "/status"}

// InstancePath is the path of an instance's page below the agent's URL,
// where bottleneck alerts link to.
func InstancePath(instance string) string {
	return "/instances/" + url.PathEscape(instance)
}

func (h *Handler) uiShell(w http.ResponseWriter, r *http.Request) {
	b, err := ui.ReadFile("ui/index.html")
	if err != nil {
		http.Error(w, "the UI is missing from this build: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}
