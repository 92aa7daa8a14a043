package deploy_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
)

func TestStage(t *testing.T) {
	tests := []struct {
		name, environment, branch string
		env, alias                string
		bad                       bool
	}{
		{name: "default", env: "production"},
		{name: "production", environment: "production", branch: "main", env: "production"},
		{name: "preview of a branch", environment: "preview", branch: "feature/x", env: "preview", alias: "feature-x"},
		{name: "preview of a commit", environment: "preview", env: "preview"},
		{name: "staging", environment: "staging", env: "staging", alias: "staging"},
		{name: "sandbox", environment: "sandbox:alice", env: "sandbox", alias: "sandbox-alice"},
		{name: "sandbox with digits", environment: "sandbox:dev-2", env: "sandbox", alias: "sandbox-dev-2"},
		{name: "sandbox without a name", environment: "sandbox:", bad: true},
		{name: "sandbox upper case", environment: "sandbox:Alice", bad: true},
		{name: "sandbox with a dot", environment: "sandbox:a.b", bad: true},
		{name: "sandbox with a double dash", environment: "sandbox:a--b", bad: true},
		{name: "sandbox name too long", environment: "sandbox:abcdefghijklmnopqrstuvwxyz0123456", bad: true},
		{name: "bare sandbox", environment: "sandbox", bad: true},
		{name: "unknown", environment: "qa", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, alias, err := deploy.Stage(tt.environment, tt.branch)
			if tt.bad {
				var ve *control.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("Stage(%q) = %q, %q, %v: want a validation error", tt.environment, env, alias, err)
				}
				return
			}
			if err != nil || env != tt.env || alias != tt.alias {
				t.Errorf("Stage(%q, %q) = %q, %q, %v; want %q, %q", tt.environment, tt.branch, env, alias, err, tt.env, tt.alias)
			}
		})
	}
}

// TestStagesGoLiveAtTheirAlias deploys to staging and two sandboxes: each
// goes live at its own pointer, production stays untouched, and each gets
// its own variables plus the preview ones.
func TestStagesGoLiveAtTheirAlias(t *testing.T) {
	e := newEnv(t, ok)
	e.run(t)
	ctx := context.Background()
	p := project(t, e, "www")
	for _, v := range []deploy.EnvInput{
		{Name: "PROD", Value: "p", Targets: []string{control.Production}},
		{Name: "PREVIEW", Value: "v", Targets: []string{control.Preview}},
		{Name: "STAGING", Value: "s", Targets: []string{control.Staging}},
		{Name: "SANDBOX", Value: "x", Targets: []string{control.Sandbox}},
	} {
		if _, err := e.svc.SetEnv(ctx, p.ID, v); err != nil {
			t.Fatalf("SetEnv(%s): %v", v.Name, err)
		}
	}
	if _, err := e.svc.SetEnv(ctx, p.ID, deploy.EnvInput{Name: "BAD", Value: "x", Targets: []string{"qa"}}); err == nil {
		t.Error("SetEnv with target qa: want an error")
	}
	tests := []struct {
		environment, pointer string
		vars                 []string
	}{
		{"staging", "staging", []string{"PREVIEW", "STAGING"}},
		{"sandbox:alice", "sandbox-alice", []string{"PREVIEW", "SANDBOX"}},
		{"sandbox:bob", "sandbox-bob", []string{"PREVIEW", "SANDBOX"}},
	}
	for _, tt := range tests {
		t.Run(tt.environment, func(t *testing.T) {
			d, err := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{Ref: sha1, Environment: tt.environment})
			if err != nil {
				t.Fatal(err)
			}
			e.wait(t, d.ID) // recorded ready, then promoted to its alias
			e.waitFor(t, "pointer "+tt.pointer, func() bool { return pointer(t, e, p.ID, tt.pointer) == d.ID })
			rt, err := e.svc.RuntimeEnv(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.vars, slices.Sorted(maps.Keys(rt))); diff != "" {
				t.Errorf("variables mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if active, _ := e.svc.Active(ctx, p.ID); active != "" {
		t.Errorf("production = %q after stage deployments, want none", active)
	}
	if _, err := e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{Environment: "sandbox:Bad Name"}); err == nil {
		t.Error("a bad sandbox name: want an error")
	}
}

// TestProjectWithoutRepository: a project may have no repository (it is
// deployed from uploaded files); asking it for a build is a clear error.
func TestProjectWithoutRepository(t *testing.T) {
	e := newEnv(t, ok)
	ctx := context.Background()
	p, err := e.svc.CreateProject(ctx, deploy.ProjectInput{Name: "files"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.CreateDeployment(ctx, p.ID, deploy.DeployInput{})
	var ve *control.ValidationError
	if !errors.As(err, &ve) || ve.Field != "repo_url" {
		t.Errorf("build of a project without a repository: err = %v, want a validation error on repo_url", err)
	}
}
