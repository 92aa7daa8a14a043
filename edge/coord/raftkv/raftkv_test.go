package raftkv_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/coordtest"
	"github.com/pierhq/pier/edge/coord/raftkv"
)

func open(t *testing.T, dir string) *raftkv.Store {
	t.Helper()
	s, err := raftkv.Open(raftkv.Config{Dir: dir, MinSessionTTL: coordtest.SessionTTL, Logger: coordtest.Logger(t)})
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
	t.Parallel()
	coordtest.Run(t, func(t *testing.T) coord.KV { return open(t, t.TempDir()) })
}

func TestRestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		snapshot bool // take a raft snapshot before closing, so Open restores it
	}{
		{"log replay", false},
		{"snapshot restore", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctx := t.Context()
			s := open(t, dir)
			if err := s.Put(ctx, "k/a", []byte("a")); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, "k/gone", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "k/gone"); err != nil {
				t.Fatal(err)
			}
			sess, err := s.CreateSession(ctx, coord.SessionOptions{TTL: coordtest.SessionTTL, Behavior: coord.BehaviorDelete})
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := s.Acquire(ctx, "k/held", []byte("h"), sess); err != nil || !ok {
				t.Fatalf("Acquire = %v, %v", ok, err)
			}
			before, err := s.Get(ctx, "k/a")
			if err != nil {
				t.Fatal(err)
			}
			_, beforeIdx, err := s.List(ctx, "k/", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if tt.snapshot {
				if err := s.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = open(t, dir)
			after, err := s.Get(ctx, "k/a")
			if err != nil {
				t.Fatalf("key lost across restart: %v", err)
			}
			if string(after.Value) != "a" || after.ModifyIndex != before.ModifyIndex || after.CreateIndex != before.CreateIndex {
				t.Fatalf("after restart %+v, before %+v", after, before)
			}
			if _, err := s.Get(ctx, "k/gone"); !errors.Is(err, coord.ErrNotFound) {
				t.Fatalf("deleted key after restart: err = %v", err)
			}
			if p, err := s.Get(ctx, "k/held"); err != nil || p.Session != sess {
				t.Fatalf("held key after restart: %+v, %v", p, err)
			}
			pairs, idx, err := s.List(ctx, "k/", 0, 0)
			if err != nil || len(pairs) != 2 || idx < beforeIdx {
				t.Fatalf("List after restart: %d pairs, index %d (before %d), %v", len(pairs), idx, beforeIdx, err)
			}
			if err := s.Put(ctx, "k/b", nil); err != nil {
				t.Fatal(err)
			}
			if p, err := s.Get(ctx, "k/b"); err != nil || p.ModifyIndex <= beforeIdx {
				t.Fatalf("index after restart: %+v, %v (before %d)", p, err, beforeIdx)
			}
			// The session's holder is gone: it expires after a fresh TTL.
			deadline := time.Now().Add(20 * time.Second)
			for {
				if _, err := s.Get(ctx, "k/held"); errors.Is(err, coord.ErrNotFound) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("session from before the restart never expired")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Run("dir required", func(t *testing.T) {
		if _, err := raftkv.Open(raftkv.Config{}); err == nil {
			t.Fatal("Open without a directory succeeded")
		}
	})
	t.Run("ttl bounds", func(t *testing.T) {
		s, err := raftkv.Open(raftkv.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, ttl := range []time.Duration{0, time.Second, 25 * time.Hour} {
			if _, err := s.CreateSession(t.Context(), coord.SessionOptions{TTL: ttl}); err == nil {
				t.Errorf("CreateSession(ttl %s) succeeded", ttl)
			}
		}
		if _, err := s.CreateSession(t.Context(), coord.SessionOptions{TTL: raftkv.DefaultMinSessionTTL}); err != nil {
			t.Error(err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		s, err := raftkv.Open(raftkv.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(t.Context(), "k", nil); !errors.Is(err, raftkv.ErrClosed) {
			t.Fatalf("Put after Close: err = %v, want ErrClosed", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}
