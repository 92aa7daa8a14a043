package pgstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/store/pgstore"
	"github.com/pierhq/pier/control/store/storetest"
	"github.com/pierhq/pier/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func open(t *testing.T, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), dsn, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the suite with one fresh schema per subtest, all
// in one database: CREATE SCHEMA costs milliseconds where CREATE DATABASE
// costs a few hundred. The store only ever uses unqualified names, so it
// lives wherever search_path points.
func TestConformance(t *testing.T) {
	dsn := testenv.Postgres(t)
	admin, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	n := 0
	storetest.Run(t, func(t *testing.T) control.Store {
		n++
		schema := fmt.Sprintf("s%d", n)
		if _, err := admin.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
			t.Fatalf("create schema: %v", err)
		}
		return open(t, withSearchPath(t, dsn, schema))
	})
}

func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse dsn: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestConcurrentOpen starts several stores on one empty database at once,
// as several control instances would: the advisory lock lets exactly one
// of them migrate, and all of them work.
func TestConcurrentOpen(t *testing.T) {
	dsn := testenv.Postgres(t)
	const n = 4
	stores := make([]*pgstore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = pgstore.Open(t.Context(), dsn, nil) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}
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

// TestReopen checks that data survives and a second Open finds the schema
// current.
func TestReopen(t *testing.T) {
	dsn := testenv.Postgres(t)
	s, err := pgstore.Open(t.Context(), dsn, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &control.Project{Name: "app"}
	if err := s.CreateProject(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dsn)
	got, err := s.GetProject(t.Context(), "app")
	if err != nil || got.ID != p.ID || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Errorf("after reopen: %+v, %v; want %+v", got, err, p)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name, dsn string
	}{
		{"garbage", "postgres://user:secret@[::1"},
		{"nothing listening", "postgres://user:secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := pgstore.Open(t.Context(), tt.dsn, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if msg := err.Error(); containsSecret(msg) {
				t.Errorf("error leaks the password: %s", msg)
			}
		})
	}
}

func containsSecret(s string) bool {
	for i := 0; i+6 <= len(s); i++ {
		if s[i:i+6] == "secret" {
			return true
		}
	}
	return false
}
