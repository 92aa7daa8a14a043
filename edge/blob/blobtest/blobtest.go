// Package blobtest is the conformance suite for Pier's object-store
// backends: every adapter (edge/blob/dirblob, edge/blob/s3blob) runs Run
// against a fresh store and must pass it unchanged, so the embedded twin
// cannot behave differently from the production store.
//
// It is test support: only _test.go files (and tests/...) import it.
// Imports: edge, the standard library.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/pierhq/pier/edge"
)

// Store is the object-store contract the suite checks.
type Store interface {
	// Put stores exactly size bytes read from r at key. It is atomic:
	// readers see the old object or the whole new one, never a partial
	// one, and a failed Put (a read error, a short reader) leaves the key
	// as it was.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the object at key; a missing key is an error wrapping
	// edge.ErrNotExist.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Exists reports whether an object is stored at key.
	Exists(ctx context.Context, key string) (bool, error)
	// Delete removes the object at key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Run runs the suite. open must return an empty store, isolated from the
// stores returned by other calls (a fresh directory, a fresh bucket or
// prefix), and clean it up through t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"NestedKeys", testNestedKeys},
		{"Missing", testMissing},
		{"PrefixIsNotAnObject", testPrefixIsNotAnObject},
		{"Exists", testExists},
		{"Delete", testDelete},
		{"FailedPutKeepsOld", testFailedPutKeepsOld},
		{"ShortReaderFails", testShortReaderFails},
		{"ConcurrentPutsSameKey", testConcurrentPuts},
		{"InvalidKeys", testInvalidKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// pattern returns n deterministic, non-repeating-looking bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func put(t *testing.T, s Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func get(t *testing.T, s Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b
}

func exists(t *testing.T, s Store, key string) bool {
	t.Helper()
	ok, err := s.Exists(t.Context(), key)
	if err != nil {
		t.Fatalf("Exists(%q): %v", key, err)
	}
	return ok
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)",
			what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func testRoundTrip(t *testing.T, s Store) {
	tests := []struct {
		name string
		key  string
		data []byte
	}{
		{"small", "small.txt", []byte("hello, pier\n")},
		{"empty", "empty", []byte{}},
		{"3MiB", "blobs/sha256/ab/large", pattern(3<<20, 7)},
		{"binary", "bin/zeros-and-ff", append(make([]byte, 1000), bytes.Repeat([]byte{0xff}, 1000)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			put(t, s, tt.key, tt.data)
			sameBytes(t, "Get after Put", get(t, s, tt.key), tt.data)
			if !exists(t, s, tt.key) {
				t.Fatalf("Exists(%q) = false after Put", tt.key)
			}
		})
	}
}

func testOverwrite(t *testing.T, s Store) {
	put(t, s, "k", []byte("first version, longer than the second"))
	put(t, s, "k", []byte("second"))
	sameBytes(t, "Get after overwrite", get(t, s, "k"), []byte("second"))
}

func testNestedKeys(t *testing.T, s Store) {
	keys := map[string]string{
		"manifests/dpl-1.json":             `{"version":1}`,
		"blobs/sha256/0a/0abc":             "a",
		"blobs/sha256/0a/0abd":             "b",
		"blobs/sha256/ff/ffff":             "c",
		"deep/a/b/c/d/e/f/g/h/file.name.x": "d",
	}
	for k, v := range keys {
		put(t, s, k, []byte(v))
	}
	for k, v := range keys {
		sameBytes(t, "Get("+k+")", get(t, s, k), []byte(v))
	}
}

func testMissing(t *testing.T, s Store) {
	for _, key := range []string{"nope", "no/such/dir/file", "manifests/dpl-missing.json"} {
		rc, err := s.Get(t.Context(), key)
		if err == nil {
			rc.Close()
			t.Fatalf("Get(%q) on an empty store: no error", key)
		}
		if !errors.Is(err, edge.ErrNotExist) {
			t.Fatalf("Get(%q) = %v, want an error wrapping edge.ErrNotExist", key, err)
		}
		if exists(t, s, key) {
			t.Fatalf("Exists(%q) = true on an empty store", key)
		}
	}
}

// A key that is only a prefix of other keys (a directory, for a disk
// store) holds no object.
func testPrefixIsNotAnObject(t *testing.T, s Store) {
	put(t, s, "dir/sub/file", []byte("x"))
	for _, key := range []string{"dir", "dir/sub"} {
		rc, err := s.Get(t.Context(), key)
		if err == nil {
			rc.Close()
			t.Fatalf("Get(%q) of a prefix: no error", key)
		}
		if !errors.Is(err, edge.ErrNotExist) {
			t.Fatalf("Get(%q) of a prefix = %v, want edge.ErrNotExist", key, err)
		}
		if exists(t, s, key) {
			t.Fatalf("Exists(%q) of a prefix = true", key)
		}
		if err := s.Delete(t.Context(), key); err != nil {
			t.Fatalf("Delete(%q) of a prefix: %v", key, err)
		}
	}
	sameBytes(t, "object under the prefix", get(t, s, "dir/sub/file"), []byte("x"))
}

func testExists(t *testing.T, s Store) {
	if exists(t, s, "a/b") {
		t.Fatal("Exists before Put = true")
	}
	put(t, s, "a/b", nil)
	if !exists(t, s, "a/b") {
		t.Fatal("Exists after Put of an empty object = false")
	}
	if exists(t, s, "a/bc") || exists(t, s, "a") {
		t.Fatal("Exists is true for a key that was never written")
	}
}

func testDelete(t *testing.T, s Store) {
	put(t, s, "x/y", []byte("gone soon"))
	put(t, s, "x/z", []byte("stays"))
	if err := s.Delete(t.Context(), "x/y"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if exists(t, s, "x/y") {
		t.Fatal("Exists after Delete = true")
	}
	if _, err := s.Get(t.Context(), "x/y"); !errors.Is(err, edge.ErrNotExist) {
		t.Fatalf("Get after Delete = %v, want edge.ErrNotExist", err)
	}
	if err := s.Delete(t.Context(), "x/y"); err != nil {
		t.Fatalf("second Delete of the same key: %v, want nil", err)
	}
	if err := s.Delete(t.Context(), "never/written"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	sameBytes(t, "sibling after Delete", get(t, s, "x/z"), []byte("stays"))
	put(t, s, "x/y", []byte("back"))
	sameBytes(t, "Put after Delete", get(t, s, "x/y"), []byte("back"))
}

func testFailedPutKeepsOld(t *testing.T, s Store) {
	put(t, s, "k", []byte("old"))
	data := pattern(64<<10, 3)
	r := io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(errors.New("disk on fire")))
	if err := s.Put(t.Context(), "k", r, int64(len(data))); err == nil {
		t.Fatal("Put with a failing reader: no error")
	}
	sameBytes(t, "Get after a failed overwrite", get(t, s, "k"), []byte("old"))

	r = io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(errors.New("disk on fire")))
	if err := s.Put(t.Context(), "fresh", r, int64(len(data))); err == nil {
		t.Fatal("Put with a failing reader: no error")
	}
	if exists(t, s, "fresh") {
		t.Fatal("a failed Put left an object behind")
	}
}

func testShortReaderFails(t *testing.T, s Store) {
	if err := s.Put(t.Context(), "short", strings.NewReader("abc"), 10); err == nil {
		t.Fatal("Put of 3 bytes with size 10: no error")
	}
	if exists(t, s, "short") {
		t.Fatal("a Put whose reader was short left an object behind")
	}
}

// Concurrent Puts of the same key end with one of the written values,
// whole, and concurrent readers never see a partial object.
func testConcurrentPuts(t *testing.T, s Store) {
	const writers = 8
	const size = 256 << 10
	values := make(map[[32]byte]bool)
	datas := make([][]byte, writers)
	for i := range datas {
		datas[i] = pattern(size, byte(i))
		values[sha256.Sum256(datas[i])] = true
	}
	put(t, s, "race", datas[0])

	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i := range writers {
		wg.Go(func() {
			if err := s.Put(ctx, "race", bytes.NewReader(datas[i]), size); err != nil {
				errs <- fmt.Errorf("writer %d: %w", i, err)
			}
		})
		wg.Go(func() {
			rc, err := s.Get(ctx, "race")
			if err != nil {
				errs <- fmt.Errorf("reader %d: %w", i, err)
				return
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				errs <- fmt.Errorf("reader %d: read: %w", i, err)
				return
			}
			if !values[sha256.Sum256(b)] {
				errs <- fmt.Errorf("reader %d saw a partial or mixed object of %d bytes", i, len(b))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := get(t, s, "race"); !values[sha256.Sum256(got)] {
		t.Fatalf("after concurrent Puts the object (%d bytes) is none of the written values", len(got))
	}
}

func testInvalidKeys(t *testing.T, s Store) {
	keys := []string{
		"",
		"/etc/passwd",
		"/abs/key",
		"..",
		"../escape",
		"a/../../escape",
		"a/../b",
		"a/./b",
		"./a",
		"a//b",
		"a/",
		`a\b`,
		`..\escape`,
		"nul\x00byte",
	}
	ctx := t.Context()
	for _, key := range keys {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			if err := s.Put(ctx, key, strings.NewReader("x"), 1); err == nil {
				t.Errorf("Put(%q): no error", key)
			}
			if rc, err := s.Get(ctx, key); err == nil {
				rc.Close()
				t.Errorf("Get(%q): no error", key)
			}
			if _, err := s.Exists(ctx, key); err == nil {
				t.Errorf("Exists(%q): no error", key)
			}
			if err := s.Delete(ctx, key); err == nil {
				t.Errorf("Delete(%q): no error", key)
			}
		})
	}
}
