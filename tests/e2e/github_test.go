package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/control/github/githubtest"
	"github.com/pierhq/pier/tests/testenv"
)

type webhookProject struct {
	project
	GitHubRepo    string `json:"github_repo"`
	WebhookSecret string `json:"webhook_secret"`
}

type previewDeployment struct {
	deployment
	Environment string `json:"environment"`
	Alias       string `json:"alias"`
	PreviewURL  string `json:"preview_url"`
	Source      string `json:"source"`
}

func listDeployments(t *testing.T, dev *testenv.Dev, name string) []previewDeployment {
	t.Helper()
	var out struct{ Deployments []previewDeployment }
	if code := dev.API(t, "GET", "/v1/projects/"+name+"/deployments", nil, &out); code != 200 {
		t.Fatalf("list deployments: %d", code)
	}
	return out.Deployments
}

func waitFinal(t *testing.T, dev *testenv.Dev, id string) previewDeployment {
	t.Helper()
	var d previewDeployment
	testenv.WaitFor(t, 2*time.Minute, "deployment "+id+" to finish", func() bool {
		dev.API(t, "GET", "/v1/deployments/"+id, nil, &d)
		return d.State == "ready" || d.State == "failed" || d.State == "canceled"
	})
	return d
}

func body(t *testing.T, dev *testenv.Dev, host string) (int, string) {
	t.Helper()
	resp := dev.Get(t, 0, host, "/")
	return resp.StatusCode, readBody(t, resp)
}

// TestDevGitHubWebhooks drives `pier dev` the way GitHub does: signed
// deliveries of recorded push and pull_request payloads for a private
// repository (cloned with the project's token), against a fake GitHub API
// that receives the commit statuses.
func TestDevGitHubWebhooks(t *testing.T) {
	gh := githubtest.NewServer(t, gitToken)
	t.Setenv("PIER_GITHUB_API_URL", gh.URL) // inherited by pier dev
	git := testenv.GitServer(t, gitToken)
	url, sha1 := git.CreateRepo(t, "www", map[string]string{"index.html": "<h1>production one</h1>"})
	sha2 := git.Commit(t, "www", map[string]string{"index.html": "<h1>pricing preview</h1>"})
	dev := testenv.StartDev(t, t.TempDir())

	var p webhookProject
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "www", "repo_url": url,
		"git_token": gitToken, "github_repo": "acme/www"}, &p); code != http.StatusCreated {
		t.Fatalf("create project: %d", code)
	}
	secret := []byte(p.WebhookSecret)
	if len(secret) == 0 || p.GitHubRepo != "acme/www" {
		t.Fatalf("project: %+v", p)
	}
	hook := dev.APIURL + "/v1/webhooks/github"
	push := githubtest.Payload(t, "push", map[string]any{"after": sha1, "head_commit.id": sha1})

	// Refused deliveries create nothing.
	for _, d := range []githubtest.Delivery{
		{Event: "push", Body: push},
		{Event: "push", Body: push, Secret: []byte("not-the-secret")},
	} {
		if code, out := githubtest.Deliver(t, hook, d); code != http.StatusUnauthorized {
			t.Errorf("bad delivery = %d %s, want 401", code, out)
		}
	}
	if ds := listDeployments(t, dev, "www"); len(ds) != 0 {
		t.Fatalf("refused deliveries created %d deployments", len(ds))
	}

	// A push to main, delivered twice (GitHub redelivers), deploys once.
	d := githubtest.Delivery{Event: "push", ID: githubtest.NewDeliveryID(), Body: push, Secret: secret}
	for range 2 {
		if code, out := githubtest.Deliver(t, hook, d); code != 200 {
			t.Fatalf("push delivery = %d %s", code, out)
		}
	}
	ds := listDeployments(t, dev, "www")
	if len(ds) != 1 {
		t.Fatalf("%d deployments after a redelivered push, want 1", len(ds))
	}
	prod := waitFinal(t, dev, ds[0].ID)
	if prod.State != "ready" || prod.CommitSHA != sha1 || prod.Environment != "production" {
		t.Fatalf("production: %+v\n%s", prod, buildLog(t, dev, prod.ID))
	}
	host := "www." + dev.BaseDomain
	testenv.WaitFor(t, 20*time.Second, "production live", func() bool {
		_, b := body(t, dev, host)
		return strings.Contains(b, "production one")
	})

	// A pull request from a branch: a preview at the branch's URL.
	pr := githubtest.Payload(t, "pull_request_opened", map[string]any{"pull_request.head.sha": sha2})
	code, out := githubtest.Deliver(t, hook, githubtest.Delivery{Event: "pull_request", Body: pr, Secret: secret})
	if code != 200 {
		t.Fatalf("pull request delivery = %d %s", code, out)
	}
	ds = listDeployments(t, dev, "www")
	preview := waitFinal(t, dev, ds[0].ID)
	if preview.State != "ready" || preview.Alias != "feature-pricing" || preview.Environment != "preview" {
		t.Fatalf("preview: %+v\n%s", preview, buildLog(t, dev, preview.ID))
	}
	previewHost := "feature-pricing.www." + dev.BaseDomain
	testenv.WaitFor(t, 20*time.Second, "preview live at its branch URL", func() bool {
		_, b := body(t, dev, previewHost)
		return strings.Contains(b, "pricing preview")
	})
	if _, b := body(t, dev, preview.ID+".www."+dev.BaseDomain); !strings.Contains(b, "pricing preview") {
		t.Errorf("per-deployment URL serves %q", b)
	}
	if _, b := body(t, dev, host); !strings.Contains(b, "production one") {
		t.Errorf("production serves %q after a preview, want production one", b)
	}

	// Statuses reached GitHub: pending, then success with the URL.
	testenv.WaitFor(t, 20*time.Second, "the preview's success status", func() bool {
		st := gh.StatusesFor(sha2)
		return len(st) > 0 && st[len(st)-1].State == "success"
	})
	st := gh.StatusesFor(sha2)
	if st[0].State != "pending" || st[0].Owner != "acme" || st[0].Repo != "www" || st[0].Token != gitToken ||
		!strings.Contains(st[len(st)-1].TargetURL, preview.ID+".www.") {
		t.Errorf("statuses for the preview: %+v", st)
	}

	// The token never shows in logs or API answers.
	for _, id := range []string{prod.ID, preview.ID} {
		if log := buildLog(t, dev, id); strings.Contains(log, gitToken) {
			t.Errorf("build log of %s contains the git token", id)
		}
	}
	var raw json.RawMessage
	dev.API(t, "GET", "/v1/projects/www/deployments", nil, &raw)
	var rawP json.RawMessage
	dev.API(t, "GET", "/v1/projects/www", nil, &rawP)
	if strings.Contains(string(raw)+string(rawP), gitToken) || strings.Contains(string(rawP), p.WebhookSecret) {
		t.Error("an API answer contains the git token or the webhook secret")
	}
	if strings.Contains(dev.Output(), gitToken) {
		t.Error("pier dev's log contains the git token")
	}

	// Closing the pull request retires the preview URL.
	closed := githubtest.Payload(t, "pull_request_closed", map[string]any{"pull_request.head.sha": sha2})
	if code, out := githubtest.Deliver(t, hook, githubtest.Delivery{Event: "pull_request", Body: closed, Secret: secret}); code != 200 ||
		!strings.Contains(out, "retired") {
		t.Fatalf("close delivery = %d %s", code, out)
	}
	testenv.WaitFor(t, 20*time.Second, "the preview URL retired", func() bool {
		code, _ := body(t, dev, previewHost)
		return code == http.StatusNotFound
	})
	if _, b := body(t, dev, host); !strings.Contains(b, "production one") {
		t.Errorf("production serves %q after retiring the preview", b)
	}
}
