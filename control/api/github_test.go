package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/github"
	"github.com/pierhq/pier/control/github/githubtest"
)

const (
	headSHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
	pushSHA = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
)

// createGitHubProject creates a project on acme/www and returns its
// webhook secret (shown once).
func createGitHubProject(t *testing.T, s *server, name string) []byte {
	t.Helper()
	code, p, _ := s.do(t, s.admin, "POST", "/v1/projects",
		fmt.Sprintf(`{"name":%q,"repo_url":"https://github.com/acme/www.git","git_token":"ghp_x"}`, name))
	secret, _ := p["webhook_secret"].(string)
	if code != 201 || p["github_repo"] != "acme/www" || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create = %d %v", code, p)
	}
	code, got, _ := s.do(t, s.admin, "GET", "/v1/projects/"+name, "")
	if raw, _ := json.Marshal(got); code != 200 || strings.Contains(string(raw), secret) {
		t.Errorf("GET project shows the webhook secret again: %s", raw)
	}
	return []byte(secret)
}

func (s *server) deployments(t *testing.T, project string) []map[string]any {
	t.Helper()
	code, out, _ := s.do(t, s.admin, "GET", "/v1/projects/"+project+"/deployments", "")
	if code != 200 {
		t.Fatalf("list deployments = %d", code)
	}
	var ds []map[string]any
	for _, d := range out["deployments"].([]any) {
		ds = append(ds, d.(map[string]any))
	}
	return ds
}

func TestWebhookSignature(t *testing.T) {
	s := newServer(t)
	secret := createGitHubProject(t, s, "www")
	hook := s.url + "/v1/webhooks/github"
	push := githubtest.Payload(t, "push", nil)
	tests := []struct {
		name string
		d    githubtest.Delivery
		url  string
	}{
		{"unsigned", githubtest.Delivery{Event: "push", Body: push}, hook},
		{"wrong secret", githubtest.Delivery{Event: "push", Body: push, Secret: []byte("guess")}, hook},
		{"wrong secret, named project", githubtest.Delivery{Event: "push", Body: push, Secret: []byte("guess")}, hook + "?project=www"},
		{"unknown repository", githubtest.Delivery{Event: "push", Secret: secret,
			Body: githubtest.Payload(t, "push", map[string]any{"repository.full_name": "acme/other"})}, hook},
		{"body changed after signing", githubtest.Delivery{Event: "push", Secret: secret, Body: push}, hook},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var code int
			var body string
			if tt.name == "body changed after signing" {
				// Sign one body, send another.
				req, _ := http.NewRequest("POST", tt.url, strings.NewReader(strings.Replace(string(push), "main", "evil", 1)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-GitHub-Event", "push")
				req.Header.Set("X-GitHub-Delivery", githubtest.NewDeliveryID())
				req.Header.Set("X-Hub-Signature-256", sign(secret, push))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				code = resp.StatusCode
			} else {
				code, body = githubtest.Deliver(t, tt.url, tt.d)
			}
			if code != http.StatusUnauthorized {
				t.Errorf("delivery = %d %s, want 401", code, body)
			}
		})
	}
	if ds := s.deployments(t, "www"); len(ds) != 0 {
		t.Errorf("refused deliveries created %d deployments", len(ds))
	}
	if code, body := githubtest.Deliver(t, hook, githubtest.Delivery{Event: "ping", Secret: secret,
		Body: githubtest.Payload(t, "ping", nil)}); code != 200 || !strings.Contains(body, "pong") {
		t.Errorf("ping = %d %s", code, body)
	}
	// A form-encoded hook is refused with a hint, after the signature check.
	if code, out, _ := s.do(t, "", "POST", "/v1/webhooks/github", "payload=x"); code != 400 && code != 401 {
		t.Errorf("form body = %d %v", code, out)
	}
}

func sign(secret, body []byte) string { return github.Sign(secret, body) }

func TestWebhookDeploysOnce(t *testing.T) {
	s := newServer(t)
	secret := createGitHubProject(t, s, "www")
	hook := s.url + "/v1/webhooks/github"
	d := githubtest.Delivery{Event: "push", ID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Secret: secret,
		Body: githubtest.Payload(t, "push", nil)}
	for i := range 3 {
		code, body := githubtest.Deliver(t, hook, d)
		want := "deployed"
		if i > 0 {
			want = "duplicate"
		}
		if code != 200 || !strings.Contains(body, `"action":"`+want+`"`) {
			t.Errorf("delivery %d = %d %s, want %s", i, code, body, want)
		}
	}
	ds := s.deployments(t, "www")
	if len(ds) != 1 || ds[0]["environment"] != "production" || ds[0]["ref"] != pushSHA || ds[0]["source"] != "github" {
		t.Fatalf("deployments after a replayed push: %v", ds)
	}

	// A push to another branch: a preview at the branch's URL.
	code, body := githubtest.Deliver(t, hook, githubtest.Delivery{Event: "push", Secret: secret,
		Body: githubtest.Payload(t, "push", map[string]any{"ref": "refs/heads/feature/pricing", "after": headSHA})})
	if code != 200 || !strings.Contains(body, "deployed") {
		t.Fatalf("branch push = %d %s", code, body)
	}
	ds = s.deployments(t, "www")
	if len(ds) != 2 || ds[0]["environment"] != "preview" || ds[0]["alias"] != "feature-pricing" ||
		ds[0]["preview_url"] != "https://feature-pricing.www.pier.test" {
		t.Fatalf("after a branch push: %v", ds[0])
	}
	// The pull request for that same commit deploys nothing more.
	code, body = githubtest.Deliver(t, hook, githubtest.Delivery{Event: "pull_request", Secret: secret,
		Body: githubtest.Payload(t, "pull_request_opened", nil)})
	if code != 200 || !strings.Contains(body, ds[0]["id"].(string)) || len(s.deployments(t, "www")) != 2 {
		t.Errorf("pull request opened = %d %s", code, body)
	}
	code, body = githubtest.Deliver(t, hook, githubtest.Delivery{Event: "pull_request", Secret: secret,
		Body: githubtest.Payload(t, "pull_request_synchronize", nil)})
	if code != 200 || len(s.deployments(t, "www")) != 3 {
		t.Errorf("pull request synchronize = %d %s", code, body)
	}
	code, body = githubtest.Deliver(t, hook, githubtest.Delivery{Event: "pull_request", Secret: secret,
		Body: githubtest.Payload(t, "pull_request_closed", nil)})
	if code != 200 || !strings.Contains(body, "retired") {
		t.Errorf("pull request closed = %d %s", code, body)
	}
	if ds := s.deployments(t, "www"); ds[0]["state"] != "canceled" {
		t.Errorf("closing the pull request left its queued deployment %v", ds[0]["state"])
	}
	// Events Pier does not use are accepted and ignored.
	code, body = githubtest.Deliver(t, hook, githubtest.Delivery{Event: "issues", Secret: secret,
		Body: githubtest.Payload(t, "ping", nil)})
	if code != 200 || !strings.Contains(body, "ignored") {
		t.Errorf("issues event = %d %s", code, body)
	}
}

func TestWebhookForkNeedsApproval(t *testing.T) {
	s := newServer(t)
	secret := createGitHubProject(t, s, "www")
	code, body := githubtest.Deliver(t, s.url+"/v1/webhooks/github", githubtest.Delivery{Event: "pull_request",
		Secret: secret, Body: githubtest.Payload(t, "pull_request_opened_fork", nil)})
	if code != 200 || !strings.Contains(body, "awaiting_approval") {
		t.Fatalf("fork pull request = %d %s", code, body)
	}
	d := s.deployments(t, "www")[0]
	id := d["id"].(string)
	if d["alias"] != "pr-13" || d["fork"] != true {
		t.Errorf("fork deployment: %v", d)
	}
	if code, _, _ := s.do(t, s.reader, "POST", "/v1/deployments/"+id+"/approve", ""); code != 403 {
		t.Errorf("a read token approved: %d", code)
	}
	if code, out, _ := s.do(t, s.admin, "POST", "/v1/deployments/"+id+"/approve", ""); code != 200 || out["state"] != "queued" {
		t.Errorf("approve = %d %v", code, out)
	}
	if code, _, _ := s.do(t, s.admin, "POST", "/v1/deployments/"+id+"/approve", ""); code != 409 {
		t.Errorf("approve twice = %d, want 409", code)
	}
	envs, _ := s.store.DeploymentEnv(context.Background(), id)
	if len(envs) != 0 {
		t.Errorf("fork deployment froze %d variables, want none", len(envs))
	}
}

func TestEnvAPI(t *testing.T) {
	s := newServer(t)
	for _, name := range []string{"alpha", "beta"} {
		if code, _, _ := s.do(t, s.admin, "POST", "/v1/projects", `{"name":"`+name+`","repo_url":"https://git.test/x.git"}`); code != 201 {
			t.Fatal(code)
		}
	}
	const value = "sk_live_do_not_leak_0123456789"
	code, out, _ := s.do(t, s.admin, "PUT", "/v1/projects/alpha/env/STRIPE_KEY",
		`{"value":"`+value+`","scope":"runtime","targets":["production","branch:feature/x"]}`)
	if code != 200 || out["name"] != "STRIPE_KEY" || out["scope"] != "runtime" {
		t.Fatalf("set = %d %v", code, out)
	}
	code, list, _ := s.do(t, s.reader, "GET", "/v1/projects/alpha/env", "")
	raw, _ := json.Marshal(list)
	if code != 200 || !strings.Contains(string(raw), "STRIPE_KEY") || strings.Contains(string(raw), value) ||
		strings.Contains(string(raw), "pier:v") || strings.Contains(string(raw), `"value"`) {
		t.Errorf("list = %d %s: want names and metadata only", code, raw)
	}
	// Another project's variables: invisible, and not deletable through it.
	if code, list, _ := s.do(t, s.admin, "GET", "/v1/projects/beta/env", ""); code != 200 || len(list["env"].([]any)) != 0 {
		t.Errorf("beta lists = %d %v", code, list)
	}
	if code, _, _ := s.do(t, s.admin, "DELETE", "/v1/projects/beta/env/STRIPE_KEY", ""); code != 404 {
		t.Errorf("delete alpha's variable through beta = %d, want 404", code)
	}
	tests := []struct {
		name, token, method, path, body string
		status                          int
	}{
		{"reader sets", s.reader, "PUT", "/v1/projects/alpha/env/X", `{"value":"v"}`, 403},
		{"reader deletes", s.reader, "DELETE", "/v1/projects/alpha/env/STRIPE_KEY", "", 403},
		{"no token", "", "GET", "/v1/projects/alpha/env", "", 401},
		{"no value", s.admin, "PUT", "/v1/projects/alpha/env/X", `{"scope":"build"}`, 400},
		{"bad name", s.admin, "PUT", "/v1/projects/alpha/env/1X", `{"value":"v"}`, 400},
		{"bad scope", s.admin, "PUT", "/v1/projects/alpha/env/X", `{"value":"v","scope":"everywhere"}`, 400},
		{"unknown project", s.admin, "PUT", "/v1/projects/nope/env/X", `{"value":"v"}`, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, out, _ := s.do(t, tt.token, tt.method, tt.path, tt.body); code != tt.status {
				t.Errorf("%s %s = %d %v, want %d", tt.method, tt.path, code, out, tt.status)
			}
		})
	}
	if code, _, _ := s.do(t, s.admin, "DELETE", "/v1/projects/alpha/env/STRIPE_KEY", ""); code != 204 {
		t.Errorf("delete = %d", code)
	}
}

func TestUploadAPI(t *testing.T) {
	s := newServer(t)
	if code, _, _ := s.do(t, s.admin, "POST", "/v1/projects", `{"name":"site","repo_url":"https://git.test/x.git"}`); code != 201 {
		t.Fatal(code)
	}
	body := "<h1>from my laptop</h1>"
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	files := fmt.Sprintf(`{"files":{"index.html":{"sha256":%q,"size":%d}}}`, hash, len(body))
	code, out, _ := s.do(t, s.admin, "POST", "/v1/projects/site/uploads", files)
	if m, _ := out["missing"].([]any); code != 200 || len(m) != 1 || m[0] != hash {
		t.Fatalf("check = %d %v", code, out)
	}
	if code, out, _ := s.do(t, s.admin, "PUT", "/v1/projects/site/uploads/"+hash, "something else"); code != 400 {
		t.Errorf("mismatched upload = %d %v, want 400", code, out)
	}
	if code, _, _ := s.do(t, s.admin, "PUT", "/v1/projects/site/uploads/"+hash, body); code != 204 {
		t.Errorf("upload = %d", code)
	}
	code, out, _ = s.do(t, s.admin, "POST", "/v1/projects/site/uploads", files)
	if m, _ := out["missing"].([]any); code != 200 || len(m) != 0 {
		t.Errorf("check after upload = %d %v", code, out)
	}
	code, out, _ = s.do(t, s.admin, "POST", "/v1/projects/site/deployments", files)
	if code != 201 || out["source"] != "upload" || out["state"] != string(control.StateQueued) {
		t.Errorf("deploy upload = %d %v", code, out)
	}
}
