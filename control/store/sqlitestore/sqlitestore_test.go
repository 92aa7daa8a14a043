package sqlitestore_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/store/sqlitestore"
	"github.com/pierhq/pier/control/store/storetest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func open(t *testing.T, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), path, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) control.Store {
		return open(t, filepath.Join(t.TempDir(), "control.db"))
	})
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "control.db") // the directory is created too
	ctx := t.Context()

	s, err := sqlitestore.Open(ctx, path, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	p := &control.Project{Name: "app", GitToken: []byte("sealed")}
	if err := s.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	d := &control.Deployment{ProjectID: p.ID, Ref: "main", Environment: control.Production}
	if err := s.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(ctx, d.ID, []byte("step 1\n")); err != nil {
		t.Fatal(err)
	}
	tok := &control.Token{Name: "ci", Hash: "abc"}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	s = open(t, path) // migrations are already applied: a no-op
	gotP, err := s.GetProject(ctx, "app")
	if err != nil || gotP.ID != p.ID || string(gotP.GitToken) != "sealed" || !gotP.CreatedAt.Equal(p.CreatedAt) {
		t.Errorf("project after reopen = %+v, %v; want %+v", gotP, err, p)
	}
	gotD, err := s.GetDeployment(ctx, d.ID)
	if err != nil || !gotD.CreatedAt.Equal(d.CreatedAt) {
		t.Errorf("deployment after reopen = %+v, %v", gotD, err)
	}
	if log, err := s.Log(ctx, d.ID, 0); err != nil || string(log) != "step 1\n" {
		t.Errorf("log after reopen = %q, %v", log, err)
	}
	if got, err := s.TokenByHash(ctx, "abc"); err != nil || got.ID != tok.ID {
		t.Errorf("token after reopen = %+v, %v", got, err)
	}
	j, err := s.ClaimBuild(ctx, "w")
	if err != nil || j.DeploymentID != d.ID {
		t.Errorf("queued job after reopen = %+v, %v", j, err)
	}
}

// TestConcurrentOpen opens one file from several stores at once, as two
// processes would: the migrations run exactly once and every store works.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.db")
	const n = 4
	stores := make([]*sqlitestore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = sqlitestore.Open(t.Context(), path, nil) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}
	// Writers in different pools (different "processes") share the file.
	for i, s := range stores {
		if err := s.CreateProject(t.Context(), &control.Project{Name: string(rune('a' + i))}); err != nil {
			t.Fatalf("CreateProject via store %d: %v", i, err)
		}
	}
	ps, err := stores[0].ListProjects(t.Context())
	if err != nil || len(ps) != n {
		t.Errorf("ListProjects = %d projects, %v; want %d", len(ps), err, n)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"question mark", filepath.Join(dir, "a?b.db")},
		{"parent is a file", filepath.Join(notDir, "control.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sqlitestore.Open(t.Context(), tt.path, nil)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tt.path)
			}
		})
	}
}

func TestTimesStoredInUTC(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "control.db"))
	loc := time.FixedZone("minus7", -7*3600)
	at := time.Date(2024, 12, 31, 20, 0, 0, 123456789, loc) // next day in UTC
	p := &control.Project{Name: "tz", CreatedAt: at}
	if err := s.CreateProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetProject(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 1, 1, 3, 0, 0, 123456000, time.UTC)
	if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want)
	}
	if _, err := s.GetProject(t.Context(), "nope"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("GetProject(nope): %v", err)
	}
}
