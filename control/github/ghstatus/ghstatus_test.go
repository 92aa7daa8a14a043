package ghstatus_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/github/ghstatus"
	"github.com/pierhq/pier/control/github/githubtest"
)

func TestCreateStatus(t *testing.T) {
	srv := githubtest.NewServer(t, "ghp_right")
	c, err := ghstatus.New(ghstatus.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	st := control.CommitStatus{Owner: "acme", Repo: "www", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e",
		State: "success", TargetURL: "https://feature-x.www.pier.test", Description: strings.Repeat("é", 200), Context: "pier/www"}
	if err := c.CreateStatus(t.Context(), "ghp_right", st); err != nil {
		t.Fatalf("CreateStatus: %v", err)
	}
	got := srv.Statuses()
	if len(got) != 1 {
		t.Fatalf("server got %d statuses, want 1", len(got))
	}
	want := githubtest.Status{Owner: "acme", Repo: "www", SHA: st.SHA, Token: "ghp_right", State: "success",
		TargetURL: st.TargetURL, Description: strings.Repeat("é", 139) + "…", Context: "pier/www"}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("status mismatch (-want +got):\n%s", diff)
	}

	tests := []struct {
		name   string
		token  string
		st     control.CommitStatus
		status int // APIError status; 0: another error
	}{
		{"bad token", "ghp_wrong", st, 401},
		{"bad state", "ghp_right", control.CommitStatus{Owner: "acme", Repo: "www", SHA: st.SHA, State: "done"}, 422},
		{"no token", "", st, 0},
		{"no commit", "ghp_right", control.CommitStatus{Owner: "acme", Repo: "www", State: "success"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.CreateStatus(t.Context(), tt.token, tt.st)
			var ae *ghstatus.APIError
			switch {
			case err == nil:
				t.Fatal("CreateStatus succeeded, want an error")
			case tt.status != 0 && (!errors.As(err, &ae) || ae.Status != tt.status):
				t.Errorf("err = %v, want an APIError %d", err, tt.status)
			case strings.Contains(err.Error(), "ghp_"):
				t.Errorf("error text carries the token: %v", err)
			}
		})
	}
	if n := len(srv.Statuses()); n != 1 {
		t.Errorf("server recorded %d statuses after the failures, want 1", n)
	}
	if _, err := ghstatus.New(ghstatus.Config{BaseURL: "ftp://x"}); err == nil {
		t.Error("New accepted an ftp base URL")
	}
}
