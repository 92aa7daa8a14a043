package github_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pierhq/pier/control/github"
	"github.com/pierhq/pier/control/github/githubtest"
)

func TestVerify(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	// The example from GitHub's documentation on validating deliveries.
	const documented = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := github.Sign(secret, body); got != documented {
		t.Fatalf("Sign = %s, want GitHub's documented %s", got, documented)
	}
	tests := []struct {
		name      string
		secret    []byte
		body      []byte
		signature string
		ok        bool
	}{
		{"valid", secret, body, documented, true},
		{"missing", secret, body, "", false},
		{"wrong secret", []byte("another secret"), body, documented, false},
		{"changed body", secret, []byte("Hello, World?"), documented, false},
		{"sha1 form", secret, body, "sha1=" + strings.TrimPrefix(documented, "sha256="), false},
		{"no prefix", secret, body, strings.TrimPrefix(documented, "sha256="), false},
		{"not hex", secret, body, "sha256=" + strings.Repeat("zz", 32), false},
		{"truncated", secret, body, documented[:len(documented)-2], false},
		{"uppercase hex", secret, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(documented, "sha256=")), true},
		{"empty secret", nil, body, github.Sign(nil, body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := github.Verify(tt.secret, tt.body, tt.signature)
			if tt.ok && err != nil {
				t.Errorf("Verify = %v, want ok", err)
			}
			if !tt.ok && !errors.Is(err, github.ErrSignature) {
				t.Errorf("Verify = %v, want ErrSignature", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		event   string
		payload string
		edits   map[string]any
		want    github.Event
	}{
		{"ping", "ping", "ping", nil, github.Event{Type: "ping", Repo: "acme/www"}},
		{"push to main", "push", "push", nil, github.Event{Type: "push", Repo: "acme/www", Branch: "main",
			SHA: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}},
		{"push to a branch", "push", "push", map[string]any{"ref": "refs/heads/feature/x"},
			github.Event{Type: "push", Repo: "acme/www", Branch: "feature/x", SHA: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}},
		{"tag", "push", "push", map[string]any{"ref": "refs/tags/v1.0.0"},
			github.Event{Type: "push", Repo: "acme/www", SHA: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}},
		{"branch deleted", "push", "push", map[string]any{"ref": "refs/heads/old", "deleted": true,
			"after": "0000000000000000000000000000000000000000", "head_commit": nil},
			github.Event{Type: "push", Repo: "acme/www", Branch: "old", SHA: "0000000000000000000000000000000000000000", Deleted: true}},
		{"pr opened", "pull_request", "pull_request_opened", nil, github.Event{Type: "pull_request", Repo: "acme/www",
			Branch: "feature/pricing", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e", Action: "opened", Number: 12}},
		{"pr synchronize", "pull_request", "pull_request_synchronize", nil, github.Event{Type: "pull_request", Repo: "acme/www",
			Branch: "feature/pricing", SHA: "c5b97d5ae6c19d5c5df71a34c7fbeeda2479ccbc", Action: "synchronize", Number: 12}},
		{"pr closed", "pull_request", "pull_request_closed", nil, github.Event{Type: "pull_request", Repo: "acme/www",
			Branch: "feature/pricing", SHA: "c5b97d5ae6c19d5c5df71a34c7fbeeda2479ccbc", Action: "closed", Number: 12}},
		{"pr from a fork", "pull_request", "pull_request_opened_fork", nil, github.Event{Type: "pull_request", Repo: "acme/www",
			Branch: "main", SHA: "1f2e3d4c5b6a79880f1e2d3c4b5a697887766554", Action: "opened", Number: 13, Fork: true}},
		{"pr from a deleted fork", "pull_request", "pull_request_opened_fork", map[string]any{"pull_request.head.repo": nil},
			github.Event{Type: "pull_request", Repo: "acme/www", Branch: "main", SHA: "1f2e3d4c5b6a79880f1e2d3c4b5a697887766554",
				Action: "opened", Number: 13, Fork: true}},
		{"other event", "issues", "push", nil, github.Event{Type: "issues", Repo: "acme/www"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := github.Parse(tt.event, githubtest.Payload(t, tt.payload, tt.edits))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
	for _, body := range []string{"", "{", `{"ref":"refs/heads/main"}`} {
		if _, err := github.Parse("push", []byte(body)); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", body)
		}
	}
}

func TestRepoFromURL(t *testing.T) {
	tests := map[string]string{
		"https://github.com/Acme/www.git":    "acme/www",
		"https://github.com/acme/www":        "acme/www",
		"https://github.com/acme/www/":       "acme/www",
		"https://GitHub.com/acme/my.site":    "acme/my.site",
		"https://gitlab.com/acme/www.git":    "",
		"https://github.com/acme":            "",
		"https://github.com/acme/www/tree/x": "",
		"http://127.0.0.1:9999/www.git":      "",
		"::":                                 "",
	}
	for in, want := range tests {
		if got := github.RepoFromURL(in); got != want {
			t.Errorf("RepoFromURL(%q) = %q, want %q", in, got, want)
		}
	}
	for s, want := range map[string]bool{"acme/www": true, "a-b/c_d.e": true, "acme": false, "acme/": false,
		"/www": false, "acme/www/x": false, "ac me/www": false, "acme/..": false} {
		if got := github.ValidRepo(s); got != want {
			t.Errorf("ValidRepo(%q) = %v, want %v", s, got, want)
		}
	}
}
