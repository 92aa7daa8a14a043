package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pierhq/pier/control/deploy"
)

func TestHooks(t *testing.T) {
	s := newServer(t)
	if code, _, _ := s.do(t, s.admin, "POST", "/v1/projects", `{"name":"site","repo_url":"https://git.test/site.git"}`); code != 201 {
		t.Fatalf("create: %d", code)
	}
	code := `async function handler(ctx) { console.log(ctx.event) }`
	body, _ := json.Marshal(map[string]string{"code": code})
	huge, _ := json.Marshal(map[string]string{"code": strings.Repeat("/", deploy.MaxHookCode+1)})
	tests := []struct {
		name, token, method, path, body string
		status                          int
		code                            string
	}{
		{"bad event", s.admin, "PUT", "/v1/projects/site/hooks/post-build", string(body), 400, "invalid"},
		{"no code", s.admin, "PUT", "/v1/projects/site/hooks/pre-build", `{}`, 400, "invalid"},
		{"code too large", s.admin, "PUT", "/v1/projects/site/hooks/pre-build", string(huge), 400, "invalid"},
		{"unknown field", s.admin, "PUT", "/v1/projects/site/hooks/pre-build", `{"script":"x"}`, 400, "bad_request"},
		{"unknown project", s.admin, "PUT", "/v1/projects/nope/hooks/pre-build", string(body), 404, "not_found"},
		{"unknown project list", s.reader, "GET", "/v1/projects/nope/hooks", "", 404, "not_found"},
		{"reader sets", s.reader, "PUT", "/v1/projects/site/hooks/pre-build", string(body), 403, "forbidden"},
		{"reader deletes", s.reader, "DELETE", "/v1/projects/site/hooks/pre-build", "", 403, "forbidden"},
		{"delete unset", s.admin, "DELETE", "/v1/projects/site/hooks/pre-build", "", 404, "not_found"},
		{"delete bad event", s.admin, "DELETE", "/v1/projects/site/hooks/nope", "", 400, "invalid"},
		{"no token", "", "GET", "/v1/projects/site/hooks", "", 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, _ := s.do(t, tt.token, tt.method, tt.path, tt.body)
			if code != tt.status || errCode(out) != tt.code {
				t.Errorf("%s %s = %d %q, want %d %q (%v)", tt.method, tt.path, code, errCode(out), tt.status, tt.code, out)
			}
		})
	}

	st, out, _ := s.do(t, s.admin, "PUT", "/v1/projects/site/hooks/post-deploy", string(body))
	if st != 200 || out["event"] != "post-deploy" || out["code"] != code || out["updated_at"] == nil {
		t.Fatalf("PUT = %d %v", st, out)
	}
	st, list, _ := s.do(t, s.reader, "GET", "/v1/projects/site/hooks", "")
	hs, _ := list["hooks"].([]any)
	if st != 200 || len(hs) != 1 || hs[0].(map[string]any)["code"] != code {
		t.Fatalf("GET = %d %v", st, list)
	}
	if st, _, _ := s.do(t, s.admin, "DELETE", "/v1/projects/site/hooks/post-deploy", ""); st != 204 {
		t.Errorf("DELETE = %d", st)
	}
	if st, list, _ := s.do(t, s.reader, "GET", "/v1/projects/site/hooks", ""); st != 200 || len(list["hooks"].([]any)) != 0 {
		t.Errorf("GET after DELETE = %d %v, want an empty list", st, list)
	}
}
