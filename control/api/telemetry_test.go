package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/api"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/secrets/localkeyring"
	"github.com/pierhq/pier/control/store/sqlitestore"
	"github.com/pierhq/pier/control/telemetry"
	"github.com/pierhq/pier/edge/blob/dirblob"
)

const telemetryToken = "telemetry-token-0123456789abcdef"

func newTelemetryServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys, _ := localkeyring.Open(filepath.Join(dir, "keyring"))
	blobs, _ := dirblob.New(filepath.Join(dir, "blobs"))
	svc := deploy.New(deploy.DefaultConfig(), deploy.Deps{Store: store, Dispatcher: nopDispatcher{}, Router: nopRouter{},
		Sealer: keys, Blobs: blobs})
	h := api.New(api.Config{BaseDomain: "pier.test", TelemetryToken: telemetryToken},
		api.Deps{Deploy: svc, Tokens: store, Telemetry: telemetry.New(telemetry.Config{}, store)})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	s := &server{url: ts.URL, store: store}
	var tok *control.Token
	s.admin, tok = api.NewToken("admin", control.ScopeAdmin)
	store.CreateToken(context.Background(), tok)
	return s
}

func gz(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func TestIngest(t *testing.T) {
	s := newTelemetryServer(t)
	code, p, _ := s.do(t, s.admin, "POST", "/v1/projects", `{"name":"site","repo_url":"https://git.test/site.git"}`)
	if code != 201 {
		t.Fatalf("create: %d", code)
	}
	pid := p["id"].(string)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	good := `{"edge":"e1","logs":[{"time":"` + now + `","kind":"console","level":"warn","project_id":"` + pid +
		`","deployment_id":"dpl-1","request_id":"r1","message":"careful"}]}`
	post := func(token, body string, gzipped bool) (int, string) {
		req, _ := http.NewRequest("POST", s.url+"/v1/telemetry", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if gzipped {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(resp.Body)
		json.Unmarshal(raw, &out)
		return resp.StatusCode, errCode(out)
	}
	tests := []struct {
		name, token, body string
		gzipped           bool
		status            int
		code              string
	}{
		{"no token", "", good, false, 401, "unauthorized"},
		{"an API token", s.admin, good, false, 401, "unauthorized"},
		{"malformed json", telemetryToken, `{"edge":`, false, 400, "bad_request"},
		{"not gzip", telemetryToken, good, true, 400, "bad_request"},
		{"bad record", telemetryToken, strings.Replace(good, `"warn"`, `"loud"`, 1), false, 400, "invalid"},
		{"no edge", telemetryToken, strings.Replace(good, `"e1"`, `""`, 1), false, 400, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if status, code := post(tc.token, tc.body, tc.gzipped); status != tc.status || code != tc.code {
				t.Errorf("POST /v1/telemetry = %d %q, want %d %q", status, code, tc.status, tc.code)
			}
		})
	}
	if _, out, _ := s.do(t, s.admin, "GET", "/v1/projects/site/logs", ""); len(out["logs"].([]any)) != 0 {
		t.Fatalf("refused batches stored records: %v", out)
	}
	if status, code := post(telemetryToken, gz(good), true); status != 204 {
		t.Fatalf("good gzipped batch = %d %s", status, code)
	}
	code, out, _ := s.do(t, s.admin, "GET", "/v1/projects/site/logs?level=warn&q=CAREFUL", "")
	logs, _ := out["logs"].([]any)
	if code != 200 || len(logs) != 1 || logs[0].(map[string]any)["edge"] != "e1" {
		t.Errorf("logs = %d %v", code, out)
	}
}

// The build log follows as server-sent events to the end of the build,
// and resumes from Last-Event-ID.
func TestBuildLogEvents(t *testing.T) {
	s := newTelemetryServer(t)
	ctx := context.Background()
	p := &control.Project{ID: control.NewID("prj"), Name: "site", RepoURL: "https://git.test/site.git"}
	if err := s.store.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	d := &control.Deployment{ID: control.NewID("dpl"), ProjectID: p.ID, Ref: "main", Environment: control.Production}
	if err := s.store.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	s.store.AppendLog(ctx, d.ID, []byte("line one\n"))
	d.State, d.Error = control.StateFailed, "exit 1"
	s.store.AppendLog(ctx, d.ID, []byte("line two\n"))
	if err := s.store.UpdateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	read := func(lastID string) string {
		req, _ := http.NewRequest("GET", s.url+"/v1/deployments/"+d.ID+"/logs?follow=1", nil)
		req.Header.Set("Authorization", "Bearer "+s.admin)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		b, _ := io.ReadAll(resp.Body) // the stream ends with the build
		return string(b)
	}
	want := "id: 18\nevent: log\ndata: {\"offset\":0,\"text\":\"line one\\nline two\\n\"}\n\n" +
		"id: 18\nevent: end\ndata: {\"error\":\"exit 1\",\"offset\":18,\"state\":\"failed\"}\n\n"
	if got := read(""); got != want {
		t.Errorf("stream:\n%s\nwant:\n%s", got, want)
	}
	if got := read("9"); !strings.Contains(got, `{"offset":9,"text":"line two\n"}`) || strings.Contains(got, "line one") {
		t.Errorf("resumed stream:\n%s", got)
	}
	if code, out, _ := s.do(t, s.admin, "GET", "/v1/deployments/"+d.ID+"/logs?follow=1", ""); code != 200 {
		t.Errorf("follow = %d %v", code, out)
	}
	req, _ := http.NewRequest("GET", s.url+"/v1/deployments/"+d.ID+"/logs?follow=1", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	req.Header.Set("Last-Event-ID", "x")
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("a bad Last-Event-ID = %d, want 400", resp.StatusCode)
	}
}
