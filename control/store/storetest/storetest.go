// Package storetest is the conformance suite for control.Store. Every
// adapter (control/store/sqlitestore, control/store/pgstore) runs it from
// its own tests:
//
//	storetest.Run(t, func(t *testing.T) control.Store { ... a fresh, empty store ... })
//
// Beyond the comments on control.Store, the suite pins the behaviour both
// adapters share, so the embedded twin never lies about production:
//
//   - Create* fill in an empty ID and a zero CreatedAt (and a project's
//     UpdatedAt), round timestamps down to microseconds in UTC, and write
//     the stored values back into the argument; UpdateDeployment does the
//     same for StartedAt and FinishedAt. Zero times read back as zero.
//   - CreateDeployment always stores state queued; its job starts at
//     attempt 1. An unknown project wraps ErrNotFound.
//   - ListProjects is ordered by name, ListTokens by creation time, and
//     ListDeployments newest first (ties: last inserted first); a limit
//     <= 0 means no limit. Empty lists are empty, non-nil slices.
//   - RequeueBuild keeps the job's place in the queue; requeueing a job
//     that is not claimed wraps ErrConflict.
//   - AppendLog of an empty chunk is a no-op; Log past the end is empty;
//     both wrap ErrNotFound for an unknown deployment.
//   - ClaimedBuilds(before) lists claims strictly before the given time,
//     oldest claim first.
//   - A project's GitHubRepo is stored lowercase and matched
//     case-insensitively; ProjectsByGitHubRepo("") is empty.
//   - CreateDeployment stores d.Env (frozen, read back by DeploymentEnv,
//     by name) and the preview fields; StateAwaitingApproval is kept and
//     enqueues nothing until ApproveDeployment, which wraps ErrConflict for
//     any other state.
//   - PutEnvVar upserts by (project, name), keeps CreatedAt, and takes
//     UpdatedAt from the argument when set; targets read back as written
//     (never nil). Variables of one project never show in another's list.
//   - PutHook upserts by (project, event), keeps CreatedAt and sets
//     UpdatedAt to now; ListHooks is ordered by event name; hooks go with
//     their project.
//   - The data store (DataSet/Get/Delete/List): see testData.
//   - RecordDelivery wraps ErrConflict for a (project, delivery) seen
//     before; ForgetDelivery lets it be recorded again, and so does
//     PruneDeliveries once it is older than the cut-off.
//
// It is a test-support package: it imports control and go-cmp, and only
// _test files import it.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/pierhq/pier/control"
)

// Run runs the suite. open must return a new, empty store for each call
// and arrange (t.Cleanup) to close it; it is called once per subtest.
func Run(t *testing.T, open func(t *testing.T) control.Store) {
	t.Run("Projects", func(t *testing.T) { testProjects(t, open) })
	t.Run("Deployments", func(t *testing.T) { testDeployments(t, open) })
	t.Run("Queue", func(t *testing.T) { testQueue(t, open) })
	t.Run("Logs", func(t *testing.T) { testLogs(t, open) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, open) })
	t.Run("GitHub", func(t *testing.T) { testGitHub(t, open) })
	t.Run("EnvVars", func(t *testing.T) { testEnvVars(t, open) })
	t.Run("DeploymentEnv", func(t *testing.T) { testDeploymentEnv(t, open) })
	t.Run("Approval", func(t *testing.T) { testApproval(t, open) })
	t.Run("Deliveries", func(t *testing.T) { testDeliveries(t, open) })
	t.Run("Hooks", func(t *testing.T) { testHooks(t, open) })
	t.Run("Domains", func(t *testing.T) { testDomains(t, open) })
	t.Run("Telemetry", func(t *testing.T) { testTelemetry(t, open) })
	t.Run("Data", func(t *testing.T) { testData(t, open) })
	t.Run("ScheduleRuns", func(t *testing.T) { testScheduleRuns(t, open) })
	t.Run("Queues", func(t *testing.T) { testQueues(t, open) })
}

// base is a fixed instant with sub-microsecond digits, in a non-UTC zone,
// to check rounding and UTC normalisation.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("X", 5*3600+30*60))

var cmpOpts = cmp.Options{cmpopts.EquateEmpty()}

func testProjects(t *testing.T, open func(t *testing.T) control.Store) {
	t.Run("CreateGet", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := &control.Project{
			Name: "blog", RepoURL: "https://git.example.test/acme/blog.git", Branch: "main",
			Framework: "vite", InstallCommand: "npm ci", BuildCommand: "npm run build", OutputDir: "dist",
			GitToken: []byte{0, 1, 2, 0xff, 'v', 0}, CreatedAt: base,
		}
		if err := s.CreateProject(ctx, p); err != nil {
			t.Fatalf("CreateProject: %v", err)
		}
		if p.ID == "" {
			t.Fatal("CreateProject did not fill in the ID")
		}
		want := base.UTC().Truncate(time.Microsecond)
		if !p.CreatedAt.Equal(want) || p.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want %v in UTC", p.CreatedAt, want)
		}
		if !p.UpdatedAt.Equal(p.CreatedAt) {
			t.Errorf("UpdatedAt = %v, want CreatedAt %v", p.UpdatedAt, p.CreatedAt)
		}
		for _, key := range []string{p.ID, p.Name} {
			got, err := s.GetProject(ctx, key)
			if err != nil {
				t.Fatalf("GetProject(%q): %v", key, err)
			}
			if diff := cmp.Diff(p, got, cmpOpts); diff != "" {
				t.Errorf("GetProject(%q) mismatch (-want +got):\n%s", key, diff)
			}
		}
	})

	t.Run("Update", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := &control.Project{Name: "docs", RepoURL: "https://git.example.test/docs.git", Branch: "main", Framework: "auto", CreatedAt: base}
		if err := s.CreateProject(ctx, p); err != nil {
			t.Fatalf("CreateProject: %v", err)
		}
		p.RepoURL, p.Branch, p.Framework = "https://git.example.test/docs2.git", "trunk", "hugo"
		p.InstallCommand, p.BuildCommand, p.OutputDir = "true", "hugo --minify", "public"
		p.GitToken = []byte("vault:v2:sealed")
		p.Name = "renamed" // ignored: names are immutable
		if err := s.UpdateProject(ctx, p); err != nil {
			t.Fatalf("UpdateProject: %v", err)
		}
		got, err := s.GetProject(ctx, p.ID)
		if err != nil {
			t.Fatalf("GetProject: %v", err)
		}
		if got.Name != "docs" || got.RepoURL != p.RepoURL || got.Branch != "trunk" || got.Framework != "hugo" ||
			got.InstallCommand != "true" || got.BuildCommand != "hugo --minify" || got.OutputDir != "public" ||
			string(got.GitToken) != "vault:v2:sealed" || !got.UpdatedAt.After(base) || !got.CreatedAt.Equal(base.Truncate(time.Microsecond)) {
			t.Errorf("after update: %+v", got)
		}
		if err := s.UpdateProject(ctx, &control.Project{ID: "prj-missing"}); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("UpdateProject(missing) = %v, want ErrNotFound", err)
		}
	})
	t.Run("DefaultsFilled", func(t *testing.T) {
		s := open(t)
		before := time.Now().Add(-time.Second)
		p := &control.Project{Name: "plain"}
		if err := s.CreateProject(t.Context(), p); err != nil {
			t.Fatalf("CreateProject: %v", err)
		}
		if p.ID == "" || p.CreatedAt.Before(before) || !p.UpdatedAt.Equal(p.CreatedAt) {
			t.Errorf("defaults not filled: %+v", p)
		}
		got, err := s.GetProject(t.Context(), p.ID)
		if err != nil {
			t.Fatalf("GetProject: %v", err)
		}
		if diff := cmp.Diff(p, got, cmpOpts); diff != "" {
			t.Errorf("GetProject mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		mustProject(t, s, "taken")
		tests := []struct {
			name string
			call func() error
			want error
		}{
			{"duplicate name", func() error { return s.CreateProject(ctx, &control.Project{Name: "taken"}) }, control.ErrConflict},
			{"get unknown", func() error { _, err := s.GetProject(ctx, "nope"); return err }, control.ErrNotFound},
			{"delete unknown", func() error { return s.DeleteProject(ctx, "prj-nope") }, control.ErrNotFound},
			{"delete by name", func() error { return s.DeleteProject(ctx, "taken") }, control.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(); !errors.Is(err, tt.want) {
					t.Errorf("got %v, want an error wrapping %v", err, tt.want)
				}
			})
		}
		ps, err := s.ListProjects(ctx)
		if err != nil || len(ps) != 1 {
			t.Errorf("after errors: ListProjects = %d projects, %v; want 1", len(ps), err)
		}
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		ps, err := s.ListProjects(ctx)
		if err != nil || ps == nil || len(ps) != 0 {
			t.Fatalf("empty ListProjects = %#v, %v; want an empty non-nil slice", ps, err)
		}
		var want []*control.Project
		for _, name := range []string{"charlie", "alpha", "bravo"} {
			want = append(want, mustProject(t, s, name))
		}
		sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
		got, err := s.ListProjects(ctx)
		if err != nil {
			t.Fatalf("ListProjects: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Errorf("ListProjects mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("DeleteCascades", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		gone := mustProject(t, s, "gone")
		kept := mustProject(t, s, "kept")
		d1 := mustDeployment(t, s, gone.ID, base)
		d2 := mustDeployment(t, s, kept.ID, base)
		if err := s.AppendLog(ctx, d1.ID, []byte("building\n")); err != nil {
			t.Fatalf("AppendLog: %v", err)
		}
		if err := s.DeleteProject(ctx, gone.ID); err != nil {
			t.Fatalf("DeleteProject: %v", err)
		}
		if _, err := s.GetProject(ctx, gone.ID); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("GetProject after delete: got %v, want ErrNotFound", err)
		}
		if _, err := s.GetDeployment(ctx, d1.ID); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("GetDeployment after delete: got %v, want ErrNotFound", err)
		}
		if _, err := s.Log(ctx, d1.ID, 0); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("Log after delete: got %v, want ErrNotFound", err)
		}
		if ds, err := s.ListDeployments(ctx, gone.ID, 0); err != nil || len(ds) != 0 {
			t.Errorf("ListDeployments after delete = %d, %v; want none", len(ds), err)
		}
		// Only the kept project's job is left in the queue.
		j, err := s.ClaimBuild(ctx, "w")
		if err != nil || j.DeploymentID != d2.ID {
			t.Fatalf("ClaimBuild = %+v, %v; want the job of %s", j, err, d2.ID)
		}
		if _, err := s.ClaimBuild(ctx, "w"); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("ClaimBuild: got %v, want ErrNotFound (the deleted project's job must be gone)", err)
		}
		if _, err := s.GetDeployment(ctx, d2.ID); err != nil {
			t.Errorf("the other project's deployment: %v", err)
		}
	})
}

func testDeployments(t *testing.T, open func(t *testing.T) control.Store) {
	t.Run("CreateGet", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		d := &control.Deployment{
			ProjectID: p.ID, Ref: "main", Environment: control.Production,
			State:     control.StateReady, // ignored: a new deployment is queued
			CreatedAt: base,
		}
		if err := s.CreateDeployment(ctx, d); err != nil {
			t.Fatalf("CreateDeployment: %v", err)
		}
		if d.ID == "" || d.State != control.StateQueued {
			t.Errorf("after create: ID %q, state %q; want an ID and %q", d.ID, d.State, control.StateQueued)
		}
		if !d.CreatedAt.Equal(base.Truncate(time.Microsecond)) {
			t.Errorf("CreatedAt = %v, want %v", d.CreatedAt, base.Truncate(time.Microsecond))
		}
		got, err := s.GetDeployment(ctx, d.ID)
		if err != nil {
			t.Fatalf("GetDeployment: %v", err)
		}
		if diff := cmp.Diff(d, got, cmpOpts); diff != "" {
			t.Errorf("GetDeployment mismatch (-want +got):\n%s", diff)
		}
		if !got.StartedAt.IsZero() || !got.FinishedAt.IsZero() {
			t.Errorf("unset times read back as %v, %v; want zero", got.StartedAt, got.FinishedAt)
		}
		j, err := s.ClaimBuild(ctx, "w1")
		if err != nil {
			t.Fatalf("ClaimBuild: %v", err)
		}
		if j.DeploymentID != d.ID || j.Attempt != 1 {
			t.Errorf("job = %+v, want deployment %s attempt 1", j, d.ID)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		d := mustDeployment(t, s, p.ID, base)
		tests := []struct {
			name string
			call func() error
			want error
		}{
			{"unknown project", func() error {
				return s.CreateDeployment(ctx, &control.Deployment{ProjectID: "prj-nope", Ref: "main"})
			}, control.ErrNotFound},
			{"duplicate id", func() error {
				return s.CreateDeployment(ctx, &control.Deployment{ID: d.ID, ProjectID: p.ID, Ref: "main"})
			}, control.ErrConflict},
			{"get unknown", func() error { _, err := s.GetDeployment(ctx, "dpl-nope"); return err }, control.ErrNotFound},
			{"update unknown", func() error {
				return s.UpdateDeployment(ctx, &control.Deployment{ID: "dpl-nope", State: control.StateFailed})
			}, control.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(); !errors.Is(err, tt.want) {
					t.Errorf("got %v, want an error wrapping %v", err, tt.want)
				}
			})
		}
		// A failed create leaves no job behind.
		if _, err := s.ClaimBuild(ctx, "w"); err != nil {
			t.Fatalf("ClaimBuild: %v", err)
		}
		if j, err := s.ClaimBuild(ctx, "w"); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("ClaimBuild = %+v, %v; want ErrNotFound (failed creates must not enqueue)", j, err)
		}
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		other := mustProject(t, s, "other")
		mustDeployment(t, s, other.ID, base.Add(time.Hour))
		var ds []*control.Deployment // oldest first
		for i := range 5 {
			ds = append(ds, mustDeployment(t, s, p.ID, base.Add(time.Duration(i)*time.Second)))
		}
		// Same creation time as the newest: the one inserted last comes first.
		ds = append(ds, mustDeployment(t, s, p.ID, base.Add(4*time.Second)))
		newest := slices.Clone(ds)
		slices.Reverse(newest)

		tests := []struct {
			name  string
			limit int
			want  []*control.Deployment
		}{
			{"limit 3", 3, newest[:3]},
			{"limit 1", 1, newest[:1]},
			{"limit above count", 100, newest},
			{"no limit", 0, newest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.ListDeployments(ctx, p.ID, tt.limit)
				if err != nil {
					t.Fatalf("ListDeployments: %v", err)
				}
				if diff := cmp.Diff(ids(tt.want), ids(got)); diff != "" {
					t.Errorf("ListDeployments(limit %d) IDs (-want +got):\n%s", tt.limit, diff)
				}
				if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
					t.Errorf("ListDeployments(limit %d) mismatch (-want +got):\n%s", tt.limit, diff)
				}
			})
		}
		got, err := s.ListDeployments(ctx, "prj-nope", 10)
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("ListDeployments(unknown project) = %#v, %v; want an empty non-nil slice", got, err)
		}
	})

	t.Run("UpdateRoundTrip", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		d := mustDeployment(t, s, p.ID, base)

		steps := []struct {
			name   string
			mutate func(d *control.Deployment)
		}{
			{"building", func(d *control.Deployment) {
				d.State = control.StateBuilding
				d.CommitSHA = "0123456789abcdef0123456789abcdef01234567"
				d.Framework = "nextjs"
				d.Attempts = 1
				d.StartedAt = base.Add(time.Minute + time.Nanosecond)
			}},
			{"failed", func(d *control.Deployment) {
				d.State = control.StateFailed
				d.Error = "build command exited with status 1"
				d.Attempts = 2
				d.FinishedAt = base.Add(2 * time.Minute)
			}},
			{"ready", func(d *control.Deployment) {
				d.State = control.StateReady
				d.Error = ""
				d.ManifestKey = "manifests/dpl/abc.json"
				d.Files = 1234
				d.Bytes = 5 << 30 // beyond 32 bits
				d.Attempts = 3
				d.FinishedAt = base.Add(3 * time.Minute)
			}},
			{"times cleared", func(d *control.Deployment) {
				d.StartedAt = time.Time{}
				d.FinishedAt = time.Time{}
			}},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				st.mutate(d)
				if err := s.UpdateDeployment(ctx, d); err != nil {
					t.Fatalf("UpdateDeployment: %v", err)
				}
				got, err := s.GetDeployment(ctx, d.ID)
				if err != nil {
					t.Fatalf("GetDeployment: %v", err)
				}
				if diff := cmp.Diff(d, got, cmpOpts); diff != "" {
					t.Errorf("after update (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func testQueue(t *testing.T, open func(t *testing.T) control.Store) {
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		if j, err := s.ClaimBuild(t.Context(), "w"); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("ClaimBuild on an empty queue = %+v, %v; want ErrNotFound", j, err)
		}
		js, err := s.ClaimedBuilds(t.Context(), time.Now().Add(time.Hour))
		if err != nil || js == nil || len(js) != 0 {
			t.Errorf("ClaimedBuilds = %#v, %v; want an empty non-nil slice", js, err)
		}
	})

	t.Run("FIFO", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		// Creation order, not CreatedAt, is the queue order.
		var want []string
		for i := range 5 {
			want = append(want, mustDeployment(t, s, p.ID, base.Add(-time.Duration(i)*time.Hour)).ID)
		}
		var got []string
		var last int64
		for i := range 5 {
			before := time.Now().Add(-time.Second)
			j, err := s.ClaimBuild(ctx, fmt.Sprintf("w%d", i))
			if err != nil {
				t.Fatalf("ClaimBuild %d: %v", i, err)
			}
			if j.ID <= last {
				t.Errorf("job IDs not increasing: %d after %d", j.ID, last)
			}
			last = j.ID
			if j.ClaimedBy != fmt.Sprintf("w%d", i) || j.Attempt != 1 || j.ClaimedAt.Before(before) {
				t.Errorf("claimed job = %+v; want claimed by w%d, attempt 1, claimed just now", j, i)
			}
			got = append(got, j.DeploymentID)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("claim order (-want +got):\n%s", diff)
		}
		if _, err := s.ClaimBuild(ctx, "w"); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("ClaimBuild after draining: got %v, want ErrNotFound", err)
		}
		if j, err := s.ClaimBuild(ctx, ""); err == nil {
			t.Errorf("ClaimBuild with an empty worker = %+v, want an error", j)
		}
	})

	t.Run("Complete", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		mustDeployment(t, s, p.ID, base)
		j := mustClaim(t, s, "w")
		if err := s.CompleteBuild(ctx, j.ID); err != nil {
			t.Fatalf("CompleteBuild: %v", err)
		}
		if err := s.CompleteBuild(ctx, j.ID); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("second CompleteBuild: got %v, want ErrNotFound", err)
		}
		if js, err := s.ClaimedBuilds(ctx, time.Now().Add(time.Hour)); err != nil || len(js) != 0 {
			t.Errorf("ClaimedBuilds after complete = %d jobs, %v; want none", len(js), err)
		}
		if _, err := s.ClaimBuild(ctx, "w"); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("ClaimBuild after complete: got %v, want ErrNotFound", err)
		}
	})

	t.Run("Requeue", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		mustDeployment(t, s, p.ID, base)
		mustDeployment(t, s, p.ID, base)
		first := mustClaim(t, s, "w1")
		if err := s.RequeueBuild(ctx, first.ID); err != nil {
			t.Fatalf("RequeueBuild: %v", err)
		}
		if err := s.RequeueBuild(ctx, first.ID); !errors.Is(err, control.ErrConflict) {
			t.Errorf("RequeueBuild of an unclaimed job: got %v, want ErrConflict", err)
		}
		if err := s.RequeueBuild(ctx, 1<<40); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("RequeueBuild of an unknown job: got %v, want ErrNotFound", err)
		}
		// The retry keeps its place: it is claimed before the second job.
		again := mustClaim(t, s, "w2")
		if again.ID != first.ID || again.DeploymentID != first.DeploymentID {
			t.Fatalf("claim after requeue = %+v, want job %d again", again, first.ID)
		}
		if again.Attempt != 2 || again.ClaimedBy != "w2" {
			t.Errorf("claim after requeue = %+v, want attempt 2 claimed by w2", again)
		}
		if err := s.RequeueBuild(ctx, again.ID); err != nil {
			t.Fatalf("RequeueBuild: %v", err)
		}
		if third := mustClaim(t, s, "w3"); third.ID != first.ID || third.Attempt != 3 {
			t.Errorf("claim after second requeue = %+v, want job %d attempt 3", third, first.ID)
		}
	})

	t.Run("ClaimedBuilds", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		for range 4 {
			mustDeployment(t, s, p.ID, base)
		}
		j1 := mustClaim(t, s, "w1")
		j2 := mustClaim(t, s, "w2")
		j3 := mustClaim(t, s, "w3")
		if err := s.CompleteBuild(ctx, j3.ID); err != nil {
			t.Fatalf("CompleteBuild: %v", err)
		}
		// The fourth job stays unclaimed and must never be listed.
		tests := []struct {
			name   string
			before time.Time
			want   []*control.BuildJob
		}{
			{"all", j2.ClaimedAt.Add(time.Hour), []*control.BuildJob{j1, j2}},
			{"strictly before the first", j1.ClaimedAt, nil},
			{"just after the second", j2.ClaimedAt.Add(time.Microsecond), []*control.BuildJob{j1, j2}},
			{"long ago", base.Add(-24 * time.Hour), nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.ClaimedBuilds(ctx, tt.before)
				if err != nil {
					t.Fatalf("ClaimedBuilds: %v", err)
				}
				if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
					t.Errorf("ClaimedBuilds(%v) (-want +got):\n%s", tt.before, diff)
				}
			})
		}
	})

	t.Run("ConcurrentClaims", func(t *testing.T) {
		const claimers, jobs = 20, 500
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		all := make(map[string]bool, jobs)
		for range jobs {
			d := &control.Deployment{ProjectID: p.ID, Ref: "main", Environment: control.Production}
			if err := s.CreateDeployment(ctx, d); err != nil {
				t.Fatalf("CreateDeployment: %v", err)
			}
			all[d.ID] = true
		}

		claims := make([][]*control.BuildJob, claimers)
		var wg sync.WaitGroup
		for c := range claimers {
			wg.Go(func() {
				worker := fmt.Sprintf("w%02d", c)
				for {
					j, err := s.ClaimBuild(ctx, worker)
					if errors.Is(err, control.ErrNotFound) {
						return
					}
					if err != nil {
						t.Errorf("%s: ClaimBuild: %v", worker, err)
						return
					}
					if j.ClaimedBy != worker {
						t.Errorf("%s: got a job claimed by %q", worker, j.ClaimedBy)
					}
					claims[c] = append(claims[c], j)
				}
			})
		}
		wg.Wait()

		seenJob := map[int64]string{}
		seenDeployment := map[string]bool{}
		for c, js := range claims {
			for i, j := range js {
				if i > 0 && j.ID <= js[i-1].ID {
					t.Errorf("claimer %d: job %d claimed after job %d (not FIFO)", c, j.ID, js[i-1].ID)
				}
				if prev, dup := seenJob[j.ID]; dup {
					t.Errorf("job %d claimed twice (by %s and w%02d)", j.ID, prev, c)
				}
				seenJob[j.ID] = fmt.Sprintf("w%02d", c)
				if !all[j.DeploymentID] || seenDeployment[j.DeploymentID] {
					t.Errorf("job %d: unexpected or repeated deployment %s", j.ID, j.DeploymentID)
				}
				seenDeployment[j.DeploymentID] = true
			}
		}
		if len(seenJob) != jobs {
			t.Errorf("%d jobs claimed, want %d", len(seenJob), jobs)
		}
	})
}

func testLogs(t *testing.T, open func(t *testing.T) control.Store) {
	t.Run("AppendAndOffset", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		d := mustDeployment(t, s, p.ID, base)
		empty := mustDeployment(t, s, p.ID, base)
		chunks := [][]byte{[]byte("hello "), {}, []byte("world"), {0, '\n', 0xff}, []byte("!")}
		var full []byte
		for _, c := range chunks {
			if err := s.AppendLog(ctx, d.ID, c); err != nil {
				t.Fatalf("AppendLog(%q): %v", c, err)
			}
			full = append(full, c...)
		}
		tests := []struct {
			name   string
			id     string
			offset int64
			want   []byte
		}{
			{"whole log", d.ID, 0, full},
			{"inside the first chunk", d.ID, 3, full[3:]},
			{"at a chunk boundary", d.ID, 6, full[6:]},
			{"inside a later chunk", d.ID, 12, full[12:]},
			{"last byte", d.ID, int64(len(full) - 1), []byte("!")},
			{"at the end", d.ID, int64(len(full)), nil},
			{"past the end", d.ID, 1000, nil},
			{"no log yet", empty.ID, 0, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Log(ctx, tt.id, tt.offset)
				if err != nil {
					t.Fatalf("Log(%d): %v", tt.offset, err)
				}
				if !bytes.Equal(got, tt.want) {
					t.Errorf("Log(%d) = %q, want %q", tt.offset, got, tt.want)
				}
			})
		}
	})

	t.Run("Errors", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		d := mustDeployment(t, s, p.ID, base)
		if err := s.AppendLog(ctx, "dpl-nope", []byte("x")); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("AppendLog(unknown): got %v, want ErrNotFound", err)
		}
		if _, err := s.Log(ctx, "dpl-nope", 0); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("Log(unknown): got %v, want ErrNotFound", err)
		}
		if _, err := s.Log(ctx, d.ID, -1); err == nil {
			t.Error("Log(-1): got nil, want an error")
		}
	})

	t.Run("ConcurrentAppends", func(t *testing.T) {
		const writers, lines = 8, 25
		s := open(t)
		ctx := t.Context()
		p := mustProject(t, s, "app")
		d := mustDeployment(t, s, p.ID, base)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range lines {
					if err := s.AppendLog(ctx, d.ID, fmt.Appendf(nil, "w%d line %02d\n", w, i)); err != nil {
						t.Errorf("AppendLog: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		got, err := s.Log(ctx, d.ID, 0)
		if err != nil {
			t.Fatalf("Log: %v", err)
		}
		// Every line whole, each writer's lines in its own order.
		next := make([]int, writers)
		ls := bytes.Split(bytes.TrimSuffix(got, []byte("\n")), []byte("\n"))
		for _, l := range ls {
			var w, i int
			if _, err := fmt.Sscanf(string(l), "w%d line %d", &w, &i); err != nil || w < 0 || w >= writers {
				t.Fatalf("torn or unknown line %q", l)
			}
			if i != next[w] {
				t.Errorf("writer %d: line %d after line %d", w, i, next[w]-1)
			}
			next[w] = i + 1
		}
		if len(ls) != writers*lines {
			t.Errorf("%d lines, want %d", len(ls), writers*lines)
		}
	})
}

func testTokens(t *testing.T, open func(t *testing.T) control.Store) {
	t.Run("CreateFindList", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		ts, err := s.ListTokens(ctx)
		if err != nil || ts == nil || len(ts) != 0 {
			t.Fatalf("empty ListTokens = %#v, %v; want an empty non-nil slice", ts, err)
		}
		var want []*control.Token
		for i, name := range []string{"ci", "laptop", "ci"} { // names need not be unique
			scope := control.ScopeAdmin
			if i%2 == 1 {
				scope = control.ScopeRead
			}
			tok := &control.Token{Name: name, Scope: scope, Hash: fmt.Sprintf("%064x", i+1), CreatedAt: base.Add(time.Duration(i) * time.Second)}
			if err := s.CreateToken(ctx, tok); err != nil {
				t.Fatalf("CreateToken: %v", err)
			}
			if tok.ID == "" || !tok.CreatedAt.Equal(base.Add(time.Duration(i)*time.Second).Truncate(time.Microsecond)) {
				t.Errorf("after create: %+v", tok)
			}
			want = append(want, tok)
		}
		for _, w := range want {
			got, err := s.TokenByHash(ctx, w.Hash)
			if err != nil {
				t.Fatalf("TokenByHash: %v", err)
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("TokenByHash mismatch (-want +got):\n%s", diff)
			}
		}
		got, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatalf("ListTokens: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListTokens mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		s := open(t)
		ctx := t.Context()
		tok := &control.Token{Name: "ci", Hash: fmt.Sprintf("%064x", 7)}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		if err := s.CreateToken(ctx, &control.Token{Name: "other", Hash: tok.Hash}); !errors.Is(err, control.ErrConflict) {
			t.Errorf("duplicate hash: got %v, want ErrConflict", err)
		}
		if _, err := s.TokenByHash(ctx, fmt.Sprintf("%064x", 8)); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("unknown hash: got %v, want ErrNotFound", err)
		}
	})
}

func testGitHub(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	a := &control.Project{Name: "www", GitHubRepo: "Acme/WWW", WebhookSecret: []byte("vault:v1:hook")}
	b := &control.Project{Name: "docs", GitHubRepo: "acme/www"} // a monorepo: two projects, one repository
	c := mustProject(t, s, "other")
	for _, p := range []*control.Project{a, b} {
		if err := s.CreateProject(ctx, p); err != nil {
			t.Fatalf("CreateProject: %v", err)
		}
	}
	if a.GitHubRepo != "acme/www" {
		t.Errorf("GitHubRepo = %q, want it lowercased", a.GitHubRepo)
	}
	got, err := s.ProjectsByGitHubRepo(ctx, "ACME/www")
	if err != nil {
		t.Fatalf("ProjectsByGitHubRepo: %v", err)
	}
	if diff := cmp.Diff([]*control.Project{b, a}, got, cmpOpts); diff != "" {
		t.Errorf("ProjectsByGitHubRepo mismatch (-want +got):\n%s", diff)
	}
	for _, repo := range []string{"", "acme/nope"} {
		if got, err := s.ProjectsByGitHubRepo(ctx, repo); err != nil || got == nil || len(got) != 0 {
			t.Errorf("ProjectsByGitHubRepo(%q) = %v, %v; want an empty non-nil slice", repo, got, err)
		}
	}
	c.GitHubRepo, c.WebhookSecret = "Acme/Other", []byte("vault:v1:other")
	if err := s.UpdateProject(ctx, c); err != nil {
		t.Fatalf("UpdateProject: %v", err)
	}
	if got, err := s.GetProject(ctx, c.ID); err != nil || got.GitHubRepo != "acme/other" || string(got.WebhookSecret) != "vault:v1:other" {
		t.Errorf("after update: %+v, %v", got, err)
	}
}

func testEnvVars(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustProject(t, s, "app")
	q := mustProject(t, s, "other")
	v := &control.EnvVar{ProjectID: p.ID, Name: "API_KEY", Sealed: "vault:v1:aaa", Scope: control.EnvRuntime,
		Targets: []string{control.Production, control.TargetBranchPrefix + "feature/x"}}
	if err := s.PutEnvVar(ctx, v); err != nil {
		t.Fatalf("PutEnvVar: %v", err)
	}
	if v.CreatedAt.IsZero() || !v.UpdatedAt.Equal(v.CreatedAt) {
		t.Errorf("times after create: %v %v", v.CreatedAt, v.UpdatedAt)
	}
	if err := s.PutEnvVar(ctx, &control.EnvVar{ProjectID: p.ID, Name: "BUILD_FLAG", Sealed: "vault:v1:bbb", Scope: control.EnvBuild}); err != nil {
		t.Fatalf("PutEnvVar: %v", err)
	}
	if err := s.PutEnvVar(ctx, &control.EnvVar{ProjectID: q.ID, Name: "API_KEY", Sealed: "vault:v1:other", Scope: control.EnvBoth,
		Targets: []string{control.Preview}}); err != nil {
		t.Fatalf("PutEnvVar: %v", err)
	}
	later := base.Add(time.Hour)
	upd := &control.EnvVar{ProjectID: p.ID, Name: "API_KEY", Sealed: "vault:v1:ccc", Scope: control.EnvBoth,
		Targets: []string{control.Preview}, UpdatedAt: later}
	if err := s.PutEnvVar(ctx, upd); err != nil {
		t.Fatalf("PutEnvVar (replace): %v", err)
	}
	if !upd.CreatedAt.Equal(v.CreatedAt) || !upd.UpdatedAt.Equal(later.Truncate(time.Microsecond)) {
		t.Errorf("after replace: created %v updated %v; want created %v updated %v", upd.CreatedAt, upd.UpdatedAt, v.CreatedAt, later)
	}
	got, err := s.ListEnvVars(ctx, p.ID)
	if err != nil {
		t.Fatalf("ListEnvVars: %v", err)
	}
	if len(got) != 2 || got[0].Name != "API_KEY" || got[1].Name != "BUILD_FLAG" {
		t.Fatalf("ListEnvVars = %+v, want API_KEY, BUILD_FLAG", got)
	}
	if diff := cmp.Diff(upd, got[0]); diff != "" {
		t.Errorf("API_KEY mismatch (-want +got):\n%s", diff)
	}
	if got[1].Targets == nil || len(got[1].Targets) != 0 || got[1].Scope != control.EnvBuild {
		t.Errorf("BUILD_FLAG = %+v, want empty non-nil targets", got[1])
	}
	if err := s.DeleteEnvVar(ctx, p.ID, "BUILD_FLAG"); err != nil {
		t.Fatalf("DeleteEnvVar: %v", err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"delete again", func() error { return s.DeleteEnvVar(ctx, p.ID, "BUILD_FLAG") }, control.ErrNotFound},
		{"delete another project's", func() error { return s.DeleteEnvVar(ctx, q.ID, "BUILD_FLAG") }, control.ErrNotFound},
		{"unknown project", func() error {
			return s.PutEnvVar(ctx, &control.EnvVar{ProjectID: "prj-nope", Name: "X", Sealed: "s", Scope: control.EnvBoth})
		}, control.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
	if got, err := s.ListEnvVars(ctx, q.ID); err != nil || len(got) != 1 || got[0].Sealed != "vault:v1:other" {
		t.Errorf("the other project's variables = %+v, %v", got, err)
	}
	if err := s.DeleteProject(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListEnvVars(ctx, q.ID); err != nil || len(got) != 0 {
		t.Errorf("after DeleteProject: %+v, %v; want none", got, err)
	}
}

func testDeploymentEnv(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustProject(t, s, "app")
	env := []control.DeploymentEnv{
		{Name: "B", Scope: control.EnvRuntime, Sealed: "vault:v1:b"},
		{Name: "A", Scope: control.EnvBuild, Sealed: "vault:v1:a"},
	}
	d := &control.Deployment{ProjectID: p.ID, Ref: strings.Repeat("a", 40), Environment: control.Preview,
		Branch: "feature/x", Alias: "feature-x", Source: control.SourceGitHub, PullRequest: 7, Fork: true,
		Env: env, CreatedAt: base}
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatalf("CreateDeployment: %v", err)
	}
	got, err := s.GetDeployment(ctx, d.ID)
	if err != nil {
		t.Fatalf("GetDeployment: %v", err)
	}
	if got.Env != nil {
		t.Errorf("GetDeployment loaded Env %v; want nil (DeploymentEnv reads it)", got.Env)
	}
	want := *d
	want.Env = nil
	if diff := cmp.Diff(&want, got, cmpOpts); diff != "" {
		t.Errorf("GetDeployment mismatch (-want +got):\n%s", diff)
	}
	frozen, err := s.DeploymentEnv(ctx, d.ID)
	if err != nil {
		t.Fatalf("DeploymentEnv: %v", err)
	}
	if diff := cmp.Diff([]control.DeploymentEnv{env[1], env[0]}, frozen); diff != "" {
		t.Errorf("DeploymentEnv mismatch (-want +got):\n%s", diff)
	}
	plain := mustDeployment(t, s, p.ID, base)
	if got, err := s.DeploymentEnv(ctx, plain.ID); err != nil || got == nil || len(got) != 0 {
		t.Errorf("DeploymentEnv(no env) = %v, %v; want an empty non-nil slice", got, err)
	}
	if _, err := s.DeploymentEnv(ctx, "dpl-nope"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("DeploymentEnv(unknown) = %v, want ErrNotFound", err)
	}
	// A duplicate name rolls the whole creation back: no deployment, no job.
	dup := &control.Deployment{ProjectID: p.ID, Ref: "main", Env: []control.DeploymentEnv{{Name: "X"}, {Name: "X"}}}
	if err := s.CreateDeployment(ctx, dup); err == nil {
		t.Fatal("CreateDeployment with a duplicate variable succeeded")
	}
	ds, err := s.ListDeployments(ctx, p.ID, 0)
	if err != nil || len(ds) != 2 {
		t.Errorf("after a failed create: %d deployments, %v; want 2", len(ds), err)
	}
}

func testApproval(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustProject(t, s, "app")
	d := &control.Deployment{ProjectID: p.ID, Ref: "main", Environment: control.Preview, State: control.StateAwaitingApproval}
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatalf("CreateDeployment: %v", err)
	}
	if got, err := s.GetDeployment(ctx, d.ID); err != nil || got.State != control.StateAwaitingApproval {
		t.Fatalf("state = %+v, %v; want awaiting_approval", got, err)
	}
	if j, err := s.ClaimBuild(ctx, "w"); !errors.Is(err, control.ErrNotFound) {
		t.Fatalf("ClaimBuild = %+v, %v; a deployment awaiting approval must not be queued", j, err)
	}
	if err := s.ApproveDeployment(ctx, d.ID); err != nil {
		t.Fatalf("ApproveDeployment: %v", err)
	}
	if got, err := s.GetDeployment(ctx, d.ID); err != nil || got.State != control.StateQueued {
		t.Errorf("after approval: %+v, %v; want queued", got, err)
	}
	if j := mustClaim(t, s, "w"); j.DeploymentID != d.ID {
		t.Errorf("claimed %s, want %s", j.DeploymentID, d.ID)
	}
	if err := s.ApproveDeployment(ctx, d.ID); !errors.Is(err, control.ErrConflict) {
		t.Errorf("second approval = %v, want ErrConflict", err)
	}
	if err := s.ApproveDeployment(ctx, "dpl-nope"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("approve unknown = %v, want ErrNotFound", err)
	}
}

func testDeliveries(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustProject(t, s, "app")
	q := mustProject(t, s, "docs")
	const id = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	if err := s.RecordDelivery(ctx, p.ID, id, "push"); err != nil {
		t.Fatalf("RecordDelivery: %v", err)
	}
	if err := s.RecordDelivery(ctx, p.ID, id, "push"); !errors.Is(err, control.ErrConflict) {
		t.Errorf("replayed delivery = %v, want ErrConflict", err)
	}
	if err := s.RecordDelivery(ctx, q.ID, id, "push"); err != nil {
		t.Errorf("the same delivery for another project = %v, want nil", err)
	}
	if err := s.RecordDelivery(ctx, "prj-nope", id, "push"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("unknown project = %v, want ErrNotFound", err)
	}
	if err := s.ForgetDelivery(ctx, p.ID, id); err != nil {
		t.Fatalf("ForgetDelivery: %v", err)
	}
	if err := s.RecordDelivery(ctx, p.ID, id, "push"); err != nil {
		t.Errorf("after ForgetDelivery: %v, want nil", err)
	}
	// Pruning: nothing received an hour ago; everything before an hour on.
	if n, err := s.PruneDeliveries(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("PruneDeliveries(an hour ago) = %d, %v; want 0", n, err)
	}
	if n, err := s.PruneDeliveries(ctx, time.Now().Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("PruneDeliveries(an hour on) = %d, %v; want 2", n, err)
	}
	if err := s.RecordDelivery(ctx, p.ID, id, "push"); err != nil {
		t.Errorf("after PruneDeliveries: %v, want nil", err)
	}
}

func testHooks(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustProject(t, s, "app")
	q := mustProject(t, s, "other")
	if got, err := s.ListHooks(ctx, p.ID); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListHooks(none) = %v, %v; want an empty non-nil slice", got, err)
	}
	before := time.Now().Add(-time.Second)
	h := &control.Hook{ProjectID: p.ID, Event: control.HookPostDeploy, Code: "async function handler(ctx) { return 1 }"}
	if err := s.PutHook(ctx, h); err != nil {
		t.Fatalf("PutHook: %v", err)
	}
	if h.CreatedAt.Before(before) || !h.UpdatedAt.Equal(h.CreatedAt) || h.CreatedAt.Location() != time.UTC {
		t.Errorf("times after create: %v %v", h.CreatedAt, h.UpdatedAt)
	}
	pre := &control.Hook{ProjectID: p.ID, Event: control.HookPreBuild, Code: "function handler() {}"}
	if err := s.PutHook(ctx, pre); err != nil {
		t.Fatalf("PutHook: %v", err)
	}
	if err := s.PutHook(ctx, &control.Hook{ProjectID: q.ID, Event: control.HookPostDeploy, Code: "other"}); err != nil {
		t.Fatalf("PutHook: %v", err)
	}
	upd := &control.Hook{ProjectID: p.ID, Event: control.HookPostDeploy, Code: "async function handler(ctx) { return 2 }"}
	if err := s.PutHook(ctx, upd); err != nil {
		t.Fatalf("PutHook (replace): %v", err)
	}
	if !upd.CreatedAt.Equal(h.CreatedAt) || upd.UpdatedAt.Before(h.UpdatedAt) {
		t.Errorf("after replace: created %v updated %v; want created %v, updated not before %v",
			upd.CreatedAt, upd.UpdatedAt, h.CreatedAt, h.UpdatedAt)
	}
	got, err := s.ListHooks(ctx, p.ID)
	if err != nil {
		t.Fatalf("ListHooks: %v", err)
	}
	if diff := cmp.Diff([]*control.Hook{upd, pre}, got); diff != "" {
		t.Errorf("ListHooks mismatch (-want +got):\n%s", diff)
	}
	one, err := s.GetHook(ctx, p.ID, control.HookPreBuild)
	if err != nil {
		t.Fatalf("GetHook: %v", err)
	}
	if diff := cmp.Diff(pre, one); diff != "" {
		t.Errorf("GetHook mismatch (-want +got):\n%s", diff)
	}
	if err := s.DeleteHook(ctx, p.ID, control.HookPreBuild); err != nil {
		t.Fatalf("DeleteHook: %v", err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"get deleted", func() error { _, err := s.GetHook(ctx, p.ID, control.HookPreBuild); return err }, control.ErrNotFound},
		{"get another project's", func() error {
			_, err := s.GetHook(ctx, q.ID, control.HookPreBuild)
			return err
		}, control.ErrNotFound},
		{"delete again", func() error { return s.DeleteHook(ctx, p.ID, control.HookPreBuild) }, control.ErrNotFound},
		{"unknown project", func() error {
			return s.PutHook(ctx, &control.Hook{ProjectID: "prj-nope", Event: control.HookPreBuild, Code: "x"})
		}, control.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
	if got, err := s.ListHooks(ctx, q.ID); err != nil || len(got) != 1 || got[0].Code != "other" {
		t.Errorf("the other project's hooks = %+v, %v", got, err)
	}
	if err := s.DeleteProject(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListHooks(ctx, q.ID); err != nil || len(got) != 0 {
		t.Errorf("after DeleteProject: %+v, %v; want none", got, err)
	}
}

// ---- fixtures ----

func mustProject(t *testing.T, s control.Store, name string) *control.Project {
	t.Helper()
	p := &control.Project{Name: name, RepoURL: "https://git.example.test/acme/" + name + ".git", Branch: "main"}
	if err := s.CreateProject(t.Context(), p); err != nil {
		t.Fatalf("CreateProject(%s): %v", name, err)
	}
	return p
}

func mustDeployment(t *testing.T, s control.Store, projectID string, created time.Time) *control.Deployment {
	t.Helper()
	d := &control.Deployment{ProjectID: projectID, Ref: "main", Environment: control.Production, CreatedAt: created}
	if err := s.CreateDeployment(t.Context(), d); err != nil {
		t.Fatalf("CreateDeployment: %v", err)
	}
	return d
}

func mustClaim(t *testing.T, s control.Store, worker string) *control.BuildJob {
	t.Helper()
	j, err := s.ClaimBuild(t.Context(), worker)
	if err != nil {
		t.Fatalf("ClaimBuild(%s): %v", worker, err)
	}
	return j
}

func ids(ds []*control.Deployment) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
