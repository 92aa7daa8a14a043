package deploy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/github/ghstatus"
	"github.com/pierhq/pier/control/github/githubtest"
	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/jobs"
)

func TestPreviewAlias(t *testing.T) {
	tests := map[string]string{
		"feature/x":          "feature-x",
		"Feature/X":          "feature-x",
		"fix--double__under": "fix-double-under",
		"-/-":                "b-" + hash6("-/-"),
		"production":         "b-production",
		"preview":            "b-preview",
		"dpl-abc123":         "b-dpl-abc123",
		"DPL/abc":            "b-dpl-abc",
		"pr-12":              "b-pr-12",
		"pr-12-fix":          "pr-12-fix",
		"release/1.2":        "release-1-2",
		"staging":            "b-staging",
		"sandbox/alice":      "b-sandbox-alice",
		"sandboxes":          "sandboxes",
	}
	for in, want := range tests {
		if got := deploy.PreviewAlias(in); got != want {
			t.Errorf("PreviewAlias(%q) = %q, want %q", in, got, want)
		}
	}
	long := strings.Repeat("very-long-branch-name/", 5)
	got := deploy.PreviewAlias(long)
	if len(got) > 63 || !strings.HasSuffix(got, hash6(long)) || deploy.PreviewAlias(long+"x") == got {
		t.Errorf("PreviewAlias(long) = %q: want a DNS label ending in the branch's hash, distinct per branch", got)
	}
	if deploy.ForkAlias(13) != "pr-13" {
		t.Errorf("ForkAlias(13) = %q", deploy.ForkAlias(13))
	}
}

func hash6(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:3])
}

const (
	sha1 = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
	sha2 = "c5b97d5ae6c19d5c5df71a34c7fbeeda2479ccbc"
)

// pointer returns the deployment an environment's pointer names, or "".
func pointer(t *testing.T, e *env, projectID, envName string) string {
	t.Helper()
	p, err := e.coord.Pointer(context.Background(), projectID, envName)
	if errors.Is(err, coord.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.DeploymentID
}

func TestPushesAndPullRequests(t *testing.T) {
	e := newEnv(t, ok)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "www")

	prod, err := e.svc.Push(ctx, p.ID, "main", sha1)
	if err != nil {
		t.Fatal(err)
	}
	if prod.Environment != control.Production || prod.Alias != "" || prod.Source != control.SourceGitHub {
		t.Errorf("push to main: %+v", prod)
	}
	e.wait(t, prod.ID)
	e.waitActive(t, p.ID, prod.ID)

	prev, err := e.svc.Push(ctx, p.ID, "feature/x", sha2)
	if err != nil {
		t.Fatal(err)
	}
	if prev.Environment != control.Preview || prev.Alias != "feature-x" || prev.Branch != "feature/x" {
		t.Errorf("push to a branch: %+v", prev)
	}
	e.wait(t, prev.ID)
	waitPointer(t, e, p.ID, "feature-x", prev.ID)
	if active, _ := e.svc.Active(ctx, p.ID); active != prod.ID {
		t.Errorf("a preview took production: %s", active)
	}

	// The pull request event for the same commit deploys nothing new,
	// and neither does GitHub sending the push again.
	again, err := e.svc.DeployPullRequest(ctx, p.ID, deploy.PullRequest{Number: 12, Branch: "feature/x", SHA: sha2})
	if err != nil || again.ID != prev.ID {
		t.Errorf("pull request for the pushed commit = %v, %v; want %s", again, err, prev.ID)
	}
	if again, _ := e.svc.Push(ctx, p.ID, "feature/x", sha2); again.ID != prev.ID {
		t.Errorf("second push = %s, want %s", again.ID, prev.ID)
	}
	if n := len(e.disp.requests()); n != 2 {
		t.Errorf("%d builds, want 2", n)
	}

	if err := e.svc.ClosePullRequest(ctx, p.ID, deploy.PullRequest{Number: 12, Branch: "feature/x", SHA: sha2}); err != nil {
		t.Fatal(err)
	}
	if got := pointer(t, e, p.ID, "feature-x"); got != "" {
		t.Errorf("closed pull request's preview still points at %s", got)
	}
	if got := pointer(t, e, p.ID, control.Production); got != prod.ID {
		t.Errorf("production = %q after retiring a preview, want %s", got, prod.ID)
	}

	tests := []struct {
		name string
		call func() error
	}{
		{"short sha", func() error { _, err := e.svc.Push(ctx, p.ID, "main", "abc1234"); return err }},
		{"bad branch", func() error { _, err := e.svc.Push(ctx, p.ID, "a..b", sha1); return err }},
		{"no number", func() error {
			_, err := e.svc.DeployPullRequest(ctx, p.ID, deploy.PullRequest{Branch: "x", SHA: sha1})
			return err
		}},
		{"retire production", func() error { return e.svc.RetirePreview(ctx, p.ID, control.Production) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ve *control.ValidationError
			if err := tt.call(); !errors.As(err, &ve) {
				t.Errorf("err = %v, want a validation error", err)
			}
		})
	}
}

func waitPointer(t *testing.T, e *env, projectID, envName, want string) {
	t.Helper()
	e.waitFor(t, "pointer "+envName+" = "+want, func() bool { return pointer(t, e, projectID, envName) == want })
}

func TestForkPullRequestNeedsApprovalAndGetsNoSecrets(t *testing.T) {
	e := newEnv(t, ok)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "www")
	if _, err := e.svc.SetEnv(ctx, p.ID, deploy.EnvInput{Name: "NPM_TOKEN", Value: "npm_secret", Scope: control.EnvBuild}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetEnv(ctx, p.ID, deploy.EnvInput{Name: "DB_URL", Value: "postgres://secret", Scope: control.EnvRuntime}); err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.DeployPullRequest(ctx, p.ID, deploy.PullRequest{Number: 13, Branch: "feature/x", SHA: sha1, Fork: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.State != control.StateAwaitingApproval || d.Alias != "pr-13" || !d.Fork {
		t.Fatalf("fork pull request: %+v", d)
	}
	// Awaiting approval means no build job: nothing can have built it.
	if got, _ := e.svc.Deployment(ctx, d.ID); got.State != control.StateAwaitingApproval || len(e.disp.requests()) != 0 {
		t.Fatalf("built before approval: %+v, %d builds", got, len(e.disp.requests()))
	}
	if _, err := e.svc.Approve(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.wait(t, d.ID); got.State != control.StateReady {
		t.Fatalf("after approval: %+v", got)
	}
	req := e.disp.requests()[0]
	if len(req.Env) != 0 {
		t.Errorf("a fork's build got variables %v, want none", slices.Collect(maps.Keys(req.Env)))
	}
	if rt, err := e.svc.RuntimeEnv(ctx, d.ID); err != nil || len(rt) != 0 {
		t.Errorf("a fork's runtime env = %v, %v; want none", rt, err)
	}
	waitPointer(t, e, p.ID, "pr-13", d.ID)
	if _, err := e.svc.Approve(ctx, d.ID); !errors.Is(err, control.ErrConflict) {
		t.Errorf("approving twice: %v, want ErrConflict", err)
	}
	// Closing an unapproved fork pull request cancels its deployment.
	d2, _ := e.svc.DeployPullRequest(ctx, p.ID, deploy.PullRequest{Number: 14, Branch: "main", SHA: sha2, Fork: true})
	if err := e.svc.ClosePullRequest(ctx, p.ID, deploy.PullRequest{Number: 14, Fork: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Deployment(ctx, d2.ID); got.State != control.StateCanceled {
		t.Errorf("closed fork pull request's deployment is %s, want canceled", got.State)
	}
}

func TestEnvScopesAndTargets(t *testing.T) {
	e := newEnv(t, ok)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "www")
	vars := []deploy.EnvInput{
		{Name: "BUILD_ONLY", Value: "build-value", Scope: control.EnvBuild},
		{Name: "RUNTIME_ONLY", Value: "runtime-value", Scope: control.EnvRuntime},
		{Name: "BOTH", Value: "both-value"}, // default scope both, targets production + preview
		{Name: "PREVIEW_ONLY", Value: "preview-value", Targets: []string{control.Preview}},
		{Name: "PROD_ONLY", Value: "production-value", Scope: control.EnvRuntime, Targets: []string{control.Production}},
		{Name: "BRANCH_X", Value: "branch-x-value", Targets: []string{"branch:feature/x"}},
	}
	for _, v := range vars {
		if _, err := e.svc.SetEnv(ctx, p.ID, v); err != nil {
			t.Fatalf("SetEnv(%s): %v", v.Name, err)
		}
	}
	tests := []struct {
		name         string
		in           deploy.DeployInput
		build        map[string]string
		runtimeNames []string
	}{
		{"production", deploy.DeployInput{}, map[string]string{"BUILD_ONLY": "build-value", "BOTH": "both-value"},
			[]string{"BOTH", "PROD_ONLY", "RUNTIME_ONLY"}},
		{"preview of feature/x", deploy.DeployInput{Ref: "feature/x", Environment: "preview"},
			map[string]string{"BUILD_ONLY": "build-value", "BOTH": "both-value", "PREVIEW_ONLY": "preview-value", "BRANCH_X": "branch-x-value"},
			[]string{"BOTH", "BRANCH_X", "PREVIEW_ONLY", "RUNTIME_ONLY"}},
		{"preview of another branch", deploy.DeployInput{Ref: sha1, Branch: "feature/y", Environment: "preview"},
			map[string]string{"BUILD_ONLY": "build-value", "BOTH": "both-value", "PREVIEW_ONLY": "preview-value"},
			[]string{"BOTH", "PREVIEW_ONLY", "RUNTIME_ONLY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.svc.CreateDeployment(ctx, p.ID, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			e.wait(t, d.ID)
			var req jobs.BuildRequest
			for _, r := range e.disp.requests() {
				if r.DeploymentID == d.ID {
					req = r
				}
			}
			if diff := cmp.Diff(tt.build, req.Env); diff != "" {
				t.Errorf("build env mismatch (-want +got):\n%s", diff)
			}
			rt, err := e.svc.RuntimeEnv(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.runtimeNames, slices.Sorted(maps.Keys(rt))); diff != "" {
				t.Errorf("runtime variables mismatch (-want +got):\n%s", diff)
			}
			// Runtime values stay sealed, and are published so for the edges.
			var doc deploy.RuntimeEnvDoc
			rc, err := e.blobs.Get(ctx, deploy.RuntimeEnvKey(d.ID))
			if err != nil {
				t.Fatalf("published runtime env: %v", err)
			}
			json.NewDecoder(rc).Decode(&doc)
			rc.Close()
			if diff := cmp.Diff(rt, doc.Env); diff != "" {
				t.Errorf("published runtime env mismatch (-want +got):\n%s", diff)
			}
			for name, sealed := range rt {
				plain, err := e.keys.Unseal(ctx, sealed)
				if err != nil || strings.Contains(sealed, string(plain)) {
					t.Errorf("%s: sealed %q opens to %q, %v", name, sealed, plain, err)
				}
			}
		})
	}
}

func TestEnvFrozenPerDeployment(t *testing.T) {
	e := newEnv(t, ok)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "www")
	set := func(v string) {
		t.Helper()
		if _, err := e.svc.SetEnv(ctx, p.ID, deploy.EnvInput{Name: "GREETING", Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	runtimeValue := func(id string) string {
		t.Helper()
		rt, err := e.svc.RuntimeEnv(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rt["GREETING"] == "" {
			return ""
		}
		plain, err := e.keys.Unseal(ctx, rt["GREETING"])
		if err != nil {
			t.Fatal(err)
		}
		return string(plain)
	}
	set("hello")
	d1, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d1.ID)
	set("bonjour")
	if got := runtimeValue(d1.ID); got != "hello" {
		t.Errorf("existing deployment sees %q after a change, want hello", got)
	}
	d2, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d2.ID)
	if got := runtimeValue(d2.ID); got != "bonjour" {
		t.Errorf("redeploy sees %q, want bonjour", got)
	}
	if err := e.svc.DeleteEnv(ctx, p.ID, "GREETING"); err != nil {
		t.Fatal(err)
	}
	if got := runtimeValue(d2.ID); got != "bonjour" {
		t.Errorf("after delete, existing deployment sees %q", got)
	}
	d3, _ := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	e.wait(t, d3.ID)
	if got := runtimeValue(d3.ID); got != "" {
		t.Errorf("deleted variable reached a new deployment: %q", got)
	}
}

func TestEnvWriteOnlyAndScopedToProject(t *testing.T) {
	e := newEnv(t, ok)
	ctx := context.Background()
	a := project(t, e, "alpha")
	b := project(t, e, "beta")
	for _, name := range []string{"ONE", "TWO"} {
		if _, err := e.svc.SetEnv(ctx, a.ID, deploy.EnvInput{Name: name, Value: "same value"}); err != nil {
			t.Fatal(err)
		}
	}
	stored, _ := e.store.ListEnvVars(ctx, a.ID)
	if stored[0].Sealed == stored[1].Sealed || strings.Contains(stored[0].Sealed, "same value") {
		t.Errorf("equal values sealed alike (%q, %q): want a unique nonce per value", stored[0].Sealed, stored[1].Sealed)
	}
	listed, err := e.svc.Env(ctx, a.ID)
	if err != nil || len(listed) != 2 {
		t.Fatalf("Env = %v, %v", listed, err)
	}
	for _, v := range listed {
		if v.Sealed != "" {
			t.Errorf("Env returned a value for %s", v.Name)
		}
	}
	if got, _ := e.svc.Env(ctx, b.ID); len(got) != 0 {
		t.Errorf("project beta lists alpha's variables: %v", got)
	}
	if err := e.svc.DeleteEnv(ctx, b.ID, "ONE"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("deleting alpha's variable through beta = %v, want ErrNotFound", err)
	}
	tests := []struct {
		name  string
		in    deploy.EnvInput
		field string
	}{
		{"empty name", deploy.EnvInput{Value: "x"}, "name"},
		{"digit first", deploy.EnvInput{Name: "1X", Value: "x"}, "name"},
		{"dash", deploy.EnvInput{Name: "A-B", Value: "x"}, "name"},
		{"reserved", deploy.EnvInput{Name: "PIER_TOKEN", Value: "x"}, "name"},
		{"nul", deploy.EnvInput{Name: "A", Value: "a\x00b"}, "value"},
		{"huge", deploy.EnvInput{Name: "A", Value: strings.Repeat("x", deploy.MaxEnvValue+1)}, "value"},
		{"scope", deploy.EnvInput{Name: "A", Value: "x", Scope: "edge"}, "scope"},
		{"target", deploy.EnvInput{Name: "A", Value: "x", Targets: []string{"qa"}}, "targets"},
		{"branch target", deploy.EnvInput{Name: "A", Value: "x", Targets: []string{"branch:a..b"}}, "targets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.SetEnv(ctx, a.ID, tt.in)
			var ve *control.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Errorf("err = %v, want a validation error on %s", err, tt.field)
			}
		})
	}
}

func TestCommitStatuses(t *testing.T) {
	gh := githubtest.NewServer(t, "tok-www")
	client, err := ghstatus.New(ghstatus.Config{BaseURL: gh.URL})
	if err != nil {
		t.Fatal(err)
	}
	var _ deploy.StatusReporter = client
	fail := false
	e := newEnvWith(t, func(req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
		if fail {
			return &jobs.BuildResult{DeploymentID: req.DeploymentID, CommitSHA: req.Ref, Error: "build failed: exit status 1"}, nil
		}
		res, _ := ok(req, log)
		res.CommitSHA = req.Ref
		return res, nil
	}, func(d *deploy.Deps) { d.Status = client })
	e.run(t)
	ctx := context.Background()
	p, err := e.svc.CreateProject(ctx, deploy.ProjectInput{Name: "www", RepoURL: "https://github.com/Acme/WWW.git", GitToken: "tok-www"})
	if err != nil || p.GitHubRepo != "acme/www" {
		t.Fatalf("project: %+v, %v", p, err)
	}
	d, err := e.svc.Push(ctx, p.ID, "feature/x", sha1)
	if err != nil {
		t.Fatal(err)
	}
	e.wait(t, d.ID)
	e.waitFor(t, "the success status", func() bool { return len(gh.StatusesFor(sha1)) == 3 })
	got := gh.StatusesFor(sha1)
	want := []githubtest.Status{
		{Owner: "acme", Repo: "www", SHA: sha1, Token: "tok-www", State: "pending", Description: "Queued",
			TargetURL: "https://" + d.ID + ".www.pier.test", Context: "pier/www"},
		{Owner: "acme", Repo: "www", SHA: sha1, Token: "tok-www", State: "pending", Description: "Building",
			TargetURL: "https://" + d.ID + ".www.pier.test", Context: "pier/www"},
		{Owner: "acme", Repo: "www", SHA: sha1, Token: "tok-www", State: "success",
			Description: "Preview ready at https://feature-x.www.pier.test",
			TargetURL:   "https://" + d.ID + ".www.pier.test", Context: "pier/www"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses mismatch (-want +got):\n%s", diff)
	}
	fail = true
	d2, _ := e.svc.Push(ctx, p.ID, "main", sha2)
	e.wait(t, d2.ID)
	e.waitFor(t, "the failure status", func() bool { return len(gh.StatusesFor(sha2)) == 3 })
	if last := gh.StatusesFor(sha2)[2]; last.State != "failure" || !strings.Contains(last.Description, "exit status 1") {
		t.Errorf("failed build's status: %+v", last)
	}
	// A fork's pull request waits for approval, and says so.
	d3, _ := e.svc.DeployPullRequest(ctx, p.ID, deploy.PullRequest{Number: 13, Branch: "main", SHA: strings.Repeat("f", 40), Fork: true})
	if st := gh.StatusesFor(d3.Ref); len(st) != 1 || st[0].State != "pending" || !strings.Contains(st[0].Description, "approve") {
		t.Errorf("fork pull request's status: %+v", st)
	}
}

func TestUploadDeployment(t *testing.T) {
	e := newEnv(t, ok)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "www")
	content := map[string]string{"index.html": "<h1>uploaded</h1>", "assets/app.js": "console.log(1)", "404.html": "nope"}
	files := map[string]deploy.UploadFile{}
	for name, body := range content {
		sum := sha256.Sum256([]byte(body))
		files[name] = deploy.UploadFile{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))}
	}
	missing, err := e.svc.MissingBlobs(ctx, p.ID, files)
	if err != nil || len(missing) != 3 {
		t.Fatalf("MissingBlobs = %v, %v; want all 3", missing, err)
	}
	if _, err := e.svc.CreateUpload(ctx, p.ID, deploy.UploadInput{Files: files}); err == nil {
		t.Fatal("CreateUpload succeeded with files missing")
	}
	idx := files["index.html"].SHA256
	if err := e.svc.PutBlob(ctx, p.ID, idx, strings.NewReader("tampered")); err == nil {
		t.Error("PutBlob accepted content that does not match its hash")
	}
	for name, body := range content {
		if err := e.svc.PutBlob(ctx, p.ID, files[name].SHA256, strings.NewReader(body)); err != nil {
			t.Fatalf("PutBlob(%s): %v", name, err)
		}
	}
	if missing, _ := e.svc.MissingBlobs(ctx, p.ID, files); len(missing) != 0 {
		t.Errorf("after upload, missing %v", missing)
	}
	d, err := e.svc.CreateUpload(ctx, p.ID, deploy.UploadInput{Files: files, SPA: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.wait(t, d.ID); got.State != control.StateReady || got.Files != 3 {
		t.Fatalf("upload deployment: %+v", got)
	}
	e.waitActive(t, p.ID, d.ID)
	if n := len(e.disp.requests()); n != 0 {
		t.Errorf("an upload ran %d builds, want none", n)
	}
	rc, err := e.blobs.Get(ctx, edge.ManifestKey(d.ID))
	if err != nil {
		t.Fatal(err)
	}
	var m edge.Manifest
	json.NewDecoder(rc).Decode(&m)
	rc.Close()
	if m.DeploymentID != d.ID || !m.SPA || m.NotFound != "404.html" || m.Files["index.html"].SHA256 != idx ||
		m.Files["index.html"].Type != "text/html; charset=utf-8" || m.Files["assets/app.js"].Size != int64(len(content["assets/app.js"])) {
		t.Errorf("manifest: %+v", m)
	}
	// Changing one file sends one blob.
	files["index.html"] = deploy.UploadFile{SHA256: strings.Repeat("0", 64), Size: 1}
	if missing, _ := e.svc.MissingBlobs(ctx, p.ID, files); len(missing) != 1 {
		t.Errorf("one changed file: missing %v, want 1", missing)
	}
	bad := []map[string]deploy.UploadFile{
		{},
		{"../x": files["404.html"]},
		{"/abs": files["404.html"]},
		{"a": {SHA256: "XYZ", Size: 1}},
		{"a": {SHA256: idx, Size: -1}},
	}
	for _, f := range bad {
		var ve *control.ValidationError
		if _, err := e.svc.MissingBlobs(ctx, p.ID, f); !errors.As(err, &ve) {
			t.Errorf("MissingBlobs(%v) = %v, want a validation error", f, err)
		}
	}
}

// TestDeliveriesPruned: a delivery is refused as a replay while it is
// remembered, and forgotten once older than DeliveryRetention, so the
// table does not grow forever.
func TestDeliveriesPruned(t *testing.T) {
	e := newEnvCfg(t, nil, nil, func(c *deploy.Config) { c.DeliveryRetention = 50 * time.Millisecond })
	ctx := t.Context()
	p := &control.Project{Name: "site", RepoURL: "https://git.example.test/site.git", Branch: "main"}
	if err := e.store.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecordDelivery(ctx, p.ID, "d-1", "push"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecordDelivery(ctx, p.ID, "d-1", "push"); !errors.Is(err, control.ErrConflict) {
		t.Fatalf("replay = %v, want ErrConflict", err)
	}
	time.Sleep(60 * time.Millisecond) // past the retention and the prune interval (a tenth of it)
	if err := e.svc.RecordDelivery(ctx, p.ID, "d-2", "push"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecordDelivery(ctx, p.ID, "d-1", "push"); err != nil {
		t.Errorf("d-1 after the retention = %v, want it forgotten", err)
	}
}
