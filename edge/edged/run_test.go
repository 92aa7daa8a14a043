package edged_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/cache/cachetest"
	"github.com/pierhq/pier/edge/edged"
	"github.com/pierhq/pier/edge/edged/edgedtest"
)

// TestRunEndpoint: POST /_pier/run runs a named function of a held
// deployment with its console output, only with the run token, and
// answers clear errors for the rest.
func TestRunEndpoint(t *testing.T) {
	st := newStack(t)
	_, log := newLogLines(t)
	cfg := edged.Config{ID: "edge-run", Addr: "127.0.0.1:0", BaseDomain: "localhost", CacheDir: t.TempDir(), Logger: log,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, RunToken: "run-secret"}
	s, err := edged.New(cfg, edged.Deps{Coord: st.coord, Blobs: st.blobs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e := &edgeProc{Server: s, id: cfg.ID}
	waitReady(t, e)

	m := edgedtest.PublishCode(t, st.blobs, edgedtest.Code{
		Deployment: cachetest.Deployment{ID: "dpl-run", ProjectID: "prj-run", ProjectName: "run", Files: map[string]cachetest.File{
			"_worker.js": {Body: `export default { fetch() { return new Response("x") },
				scheduled(ev) { console.log("tick", ev.n); return { n: ev.n + 1 } } };
				export function boom() { console.warn("about to fail"); throw new Error("kaput") }`},
		}},
		Server: "_worker.js",
	})
	promote(t, st.coord, m)
	auth := map[string]string{"Authorization": "Bearer run-secret"}
	run := func(body string, hdr map[string]string) (int, edge.RunResult) {
		t.Helper()
		r := do(t, e, "POST", e.Addr(), "/_pier/run", body, hdr)
		var res edge.RunResult
		if r.status == 200 {
			if err := json.Unmarshal([]byte(r.body), &res); err != nil {
				t.Fatalf("run answer %q: %v", r.body, err)
			}
		}
		return r.status, res
	}
	code, res := run(`{"deployment_id":"dpl-run","function":"scheduled","event":{"n":1},"run_id":"run-1"}`, auth)
	if code != 200 || string(res.Result) != `{"n":2}` || res.Error != "" || res.Edge != "edge-run" ||
		len(res.Logs) != 1 || res.Logs[0].Message != "tick 1" || res.Logs[0].Level != "log" {
		t.Errorf("run scheduled = %d %+v", code, res)
	}
	code, res = run(`{"deployment_id":"dpl-run","function":"boom","run_id":"run-2"}`, auth)
	if code != 200 || !strings.Contains(res.Error, "kaput") || len(res.Logs) != 1 || res.Logs[0].Level != "warn" {
		t.Errorf("run boom = %d %+v", code, res)
	}
	code, res = run(`{"deployment_id":"dpl-run","function":"nope","run_id":"run-3"}`, auth)
	if code != 200 || !strings.Contains(res.Error, "exports no function nope") {
		t.Errorf("run nope = %d %+v", code, res)
	}
	for _, tc := range []struct {
		name, body string
		hdr        map[string]string
		want       int
	}{
		{"no token", `{"deployment_id":"dpl-run","function":"scheduled"}`, nil, 401},
		{"wrong token", `{"deployment_id":"dpl-run","function":"scheduled"}`, map[string]string{"Authorization": "Bearer nope"}, 401},
		{"unknown deployment", `{"deployment_id":"dpl-none","function":"scheduled"}`, auth, 404},
		{"bad body", `{"deployment_id":`, auth, 400},
		{"no function", `{"deployment_id":"dpl-run"}`, auth, 400},
	} {
		if code, _ := run(tc.body, tc.hdr); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
	// On a project's host the path is the project's, not the endpoint.
	if r := do(t, e, "POST", "run.localhost", "/_pier/run", `{}`, auth); r.body != "x" {
		t.Errorf("/_pier/run on a project host = %d %q, want the project's server code", r.status, r.body)
	}
}
