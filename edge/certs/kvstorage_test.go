package certs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/certs"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/consulkv"
	"github.com/pierhq/pier/edge/coord/coordtest"
	"github.com/pierhq/pier/edge/coord/raftkv"
	"github.com/pierhq/pier/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestKVStorage runs the storage checks on both coordination backends:
// the embedded raft and a real Consul agent (production).
func TestKVStorage(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) coord.KV
	}{
		{"raftkv", func(t *testing.T) coord.KV {
			s, err := raftkv.Open(raftkv.Config{Dir: t.TempDir(), Logger: coordtest.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"consulkv", func(t *testing.T) coord.KV {
			agent := testenv.Consul(t)
			b := make([]byte, 6)
			rand.Read(b)
			s, err := consulkv.New(consulkv.Config{Address: agent.Addr, KeyPrefix: "pier-test/" + hex.EncodeToString(b) + "/", Logger: coordtest.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			kv := b.open(t)
			t.Run("Values", func(t *testing.T) { testValues(t, certs.NewKVStorage(kv)) })
			t.Run("Lock", func(t *testing.T) { testLock(t, kv) })
		})
	}
}

func testValues(t *testing.T, s *certs.KVStorage) {
	ctx := t.Context()
	if _, err := s.Load(ctx, "certificates/ca/a.test/a.test.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	if s.Exists(ctx, "certificates") {
		t.Error("Exists on an empty storage")
	}
	files := map[string]string{
		"certificates/ca/a.test/a.test.crt":  "crt-a",
		"certificates/ca/a.test/a.test.key":  "key-a",
		"certificates/ca/b.test/b.test.crt":  "crt-b",
		"acme/ca/users/default/default.json": "{}",
	}
	before := time.Now().Add(-time.Second)
	for k, v := range files {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatalf("Store(%s): %v", k, err)
		}
	}
	for k, v := range files {
		got, err := s.Load(ctx, k)
		if err != nil || string(got) != v {
			t.Errorf("Load(%s) = %q, %v; want %q", k, got, err, v)
		}
	}
	info, err := s.Stat(ctx, "certificates/ca/a.test/a.test.key")
	if err != nil || !info.IsTerminal || info.Size != 5 || info.Modified.Before(before) {
		t.Errorf("Stat(file) = %+v, %v", info, err)
	}
	if info, err := s.Stat(ctx, "certificates/ca"); err != nil || info.IsTerminal {
		t.Errorf("Stat(dir) = %+v, %v", info, err)
	}
	if !s.Exists(ctx, "certificates/ca") || !s.Exists(ctx, "acme/ca/users/default/default.json") {
		t.Error("Exists(dir or file) = false")
	}
	got, err := s.List(ctx, "certificates/ca", false)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"certificates/ca/a.test", "certificates/ca/b.test"}) {
		t.Errorf("List(non-recursive) = %v, %v", got, err)
	}
	got, err = s.List(ctx, "certificates", true)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"certificates/ca/a.test/a.test.crt", "certificates/ca/a.test/a.test.key", "certificates/ca/b.test/b.test.crt"}) {
		t.Errorf("List(recursive) = %v, %v", got, err)
	}
	if err := s.Delete(ctx, "certificates/ca/a.test"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/a.test") || !s.Exists(ctx, "certificates/ca/b.test/b.test.crt") {
		t.Error("Delete(dir) removed the wrong keys")
	}
	if err := s.Delete(ctx, "never/there"); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}
}

// testLock: two edges (two storages on one KV) never hold a name at once;
// the second gets it once the first unlocks; a waiter gives up with its
// context.
func testLock(t *testing.T, kv coord.KV) {
	ctx := t.Context()
	a, b := certs.NewKVStorage(kv), certs.NewKVStorage(kv)
	if err := a.Lock(ctx, "issue_cert_www.example.test"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 600*time.Millisecond)
	defer cancel()
	if err := b.Lock(short, "issue_cert_www.example.test"); err == nil {
		t.Fatal("a second edge took a held lock")
	}
	if err := b.Lock(ctx, "issue_cert_other.example.test"); err != nil {
		t.Fatalf("another name: %v", err)
	}
	if err := b.Unlock(ctx, "issue_cert_other.example.test"); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_www.example.test") }()
	select {
	case err := <-got:
		t.Fatalf("Lock returned while held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := a.Unlock(ctx, "issue_cert_www.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	if err := b.Unlock(ctx, "issue_cert_www.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, "issue_cert_www.example.test"); err == nil {
		t.Error("Unlock of a lock not held succeeded")
	}
}
