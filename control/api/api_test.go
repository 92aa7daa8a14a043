package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/api"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/secrets/localkeyring"
	"github.com/pierhq/pier/control/store/sqlitestore"
	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/jobs"
)

// nopRouter: no edges in these tests; nothing is ever live.
type nopRouter struct{}

func (nopRouter) Announce(context.Context, string, string, string) error { return nil }
func (nopRouter) Retract(context.Context, string) error                  { return nil }
func (nopRouter) Promote(_ context.Context, _, _, _, id string) (*deploy.Cutover, error) {
	return &deploy.Cutover{DeploymentID: id}, nil
}
func (nopRouter) Active(context.Context, string, string) (string, error) { return "", nil }
func (nopRouter) Forget(context.Context, string) error                   { return nil }
func (nopRouter) Retire(context.Context, string, string) error           { return nil }

type nopDispatcher struct{}

func (nopDispatcher) Dispatch(context.Context, jobs.BuildRequest, io.Writer) (*jobs.BuildResult, error) {
	return &jobs.BuildResult{}, nil
}

type server struct {
	url           string
	admin, reader string
	store         control.Store
}

func newServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys, _ := localkeyring.Open(filepath.Join(dir, "keyring"))
	blobs, err := dirblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	svc := deploy.New(deploy.DefaultConfig(), deploy.Deps{Store: store, Dispatcher: nopDispatcher{}, Router: nopRouter{},
		Sealer: keys, Blobs: blobs})
	h := api.New(api.Config{BaseDomain: "pier.test", EdgeScheme: "https"}, api.Deps{Deploy: svc, Tokens: store})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	s := &server{url: ts.URL, store: store}
	var tok *control.Token
	s.admin, tok = api.NewToken("admin", control.ScopeAdmin)
	store.CreateToken(context.Background(), tok)
	s.reader, tok = api.NewToken("reader", control.ScopeRead)
	store.CreateToken(context.Background(), tok)
	return s
}

func (s *server) do(t *testing.T, token, method, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestErrors(t *testing.T) {
	s := newServer(t)
	if code, _, _ := s.do(t, s.admin, "POST", "/v1/projects", `{"name":"site","repo_url":"https://git.test/site.git"}`); code != 201 {
		t.Fatalf("create: %d", code)
	}
	tests := []struct {
		name, token, method, path, body string
		status                          int
		code                            string
	}{
		{"missing token", "", "GET", "/v1/projects", "", 401, "unauthorized"},
		{"wrong token", "pier_wrong", "GET", "/v1/projects", "", 401, "unauthorized"},
		{"reader writes", s.reader, "POST", "/v1/projects", `{"name":"x","repo_url":"https://git.test/x.git"}`, 403, "forbidden"},
		{"reader deletes", s.reader, "DELETE", "/v1/projects/site", "", 403, "forbidden"},
		{"malformed json", s.admin, "POST", "/v1/projects", `{"name":`, 400, "bad_request"},
		{"unknown field", s.admin, "POST", "/v1/projects", `{"nme":"x"}`, 400, "bad_request"},
		{"invalid name", s.admin, "POST", "/v1/projects", `{"name":"a b","repo_url":"https://git.test/x.git"}`, 400, "invalid"},
		{"duplicate", s.admin, "POST", "/v1/projects", `{"name":"site","repo_url":"https://git.test/site.git"}`, 409, "conflict"},
		{"unknown project", s.admin, "GET", "/v1/projects/nope", "", 404, "not_found"},
		{"unknown route", s.admin, "GET", "/v1/nope", "", 404, "not_found"},
		{"bad ref", s.admin, "POST", "/v1/projects/site/deployments", `{"ref":"--upload-pack=x"}`, 400, "invalid"},
		{"bad environment", s.admin, "POST", "/v1/projects/site/deployments", `{"environment":"staging2"}`, 400, "invalid"},
		{"bad limit", s.admin, "GET", "/v1/projects/site/deployments?limit=0", "", 400, "invalid"},
		{"bad log offset", s.admin, "GET", "/v1/deployments/dpl-x/logs?offset=-1", "", 400, "invalid"},
		{"unknown deployment", s.admin, "POST", "/v1/deployments/dpl-nope/promote", "", 404, "not_found"},
		{"bad token scope", s.admin, "POST", "/v1/tokens", `{"name":"x","scope":"root"}`, 400, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, hdr := s.do(t, tt.token, tt.method, tt.path, tt.body)
			if code != tt.status || errCode(out) != tt.code {
				t.Errorf("%s %s = %d %q, want %d %q (%v)", tt.method, tt.path, code, errCode(out), tt.status, tt.code, out)
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestProjectsAndDeployments(t *testing.T) {
	s := newServer(t)
	code, p, _ := s.do(t, s.admin, "POST", "/v1/projects", `{"name":"site","repo_url":"https://git.test/site.git","git_token":"ghp_secret"}`)
	if code != 201 || p["url"] != "https://site.pier.test" || p["has_git_token"] != true {
		t.Fatalf("create = %d %v", code, p)
	}
	if raw, _ := json.Marshal(p); strings.Contains(string(raw), "ghp_secret") || strings.Contains(string(raw), "pier:v") {
		t.Errorf("the project JSON exposes the git token: %s", raw)
	}
	code, list, _ := s.do(t, s.reader, "GET", "/v1/projects", "")
	if ps, _ := list["projects"].([]any); code != 200 || len(ps) != 1 {
		t.Errorf("list = %d %v", code, list)
	}
	code, d, _ := s.do(t, s.admin, "POST", "/v1/projects/site/deployments", `{"ref":"main"}`)
	if code != 201 || d["state"] != "queued" || d["ref"] != "main" {
		t.Fatalf("deploy = %d %v", code, d)
	}
	id := d["id"].(string)
	code, got, _ := s.do(t, s.reader, "GET", "/v1/deployments/"+id, "")
	if code != 200 || got["id"] != id {
		t.Errorf("get = %d %v", code, got)
	}
	s.store.AppendLog(context.Background(), id, []byte("hello\n"))
	req, _ := http.NewRequest("GET", s.url+"/v1/deployments/"+id+"/logs?offset=2", nil)
	req.Header.Set("Authorization", "Bearer "+s.reader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "llo\n" || resp.Header.Get("X-Log-Offset") != "6" {
		t.Errorf("log = %q offset %q", body, resp.Header.Get("X-Log-Offset"))
	}
	if code, _, _ := s.do(t, s.admin, "POST", "/v1/deployments/"+id+"/promote", ""); code != 409 {
		t.Errorf("promote a queued deployment = %d, want 409", code)
	}
	if code, out, _ := s.do(t, s.admin, "POST", "/v1/deployments/"+id+"/cancel", ""); code != 202 || out["state"] != "canceled" {
		t.Errorf("cancel = %d %v", code, out)
	}
	if code, _, _ := s.do(t, s.admin, "DELETE", "/v1/projects/site", ""); code != 204 {
		t.Errorf("delete = %d", code)
	}
}

func TestTokens(t *testing.T) {
	s := newServer(t)
	code, out, _ := s.do(t, s.admin, "POST", "/v1/tokens", `{"name":"ci","scope":"read"}`)
	secret, _ := out["token"].(string)
	if code != 201 || !strings.HasPrefix(secret, "pier_") {
		t.Fatalf("create token = %d %v", code, out)
	}
	if code, _, _ := s.do(t, secret, "GET", "/v1/projects", ""); code != 200 {
		t.Errorf("new token GET = %d", code)
	}
	code, list, _ := s.do(t, s.admin, "GET", "/v1/tokens", "")
	raw, _ := json.Marshal(list)
	if code != 200 || strings.Contains(string(raw), secret) || strings.Contains(string(raw), api.HashToken(secret)) {
		t.Errorf("token list = %d %s: must show neither secrets nor hashes", code, raw)
	}
}
