package main

import (
	"log/slog"
	"net/http"

	"github.com/pierhq/pier/control/dashboard"
)

// withDashboard serves the web dashboard at /ui/ beside the API (which
// keeps every other path), and sends / to the dashboard.
func withDashboard(api http.Handler, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(dashboard.Prefix, dashboard.New(dashboard.Config{Logger: logger}, dashboard.Deps{API: api}))
	mux.Handle("GET /{$}", http.RedirectHandler(dashboard.Prefix, http.StatusFound))
	mux.Handle("/", api)
	return mux
}
