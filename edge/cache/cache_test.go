package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/cache"
	"github.com/pierhq/pier/edge/cache/cachetest"
)

func newCache(t *testing.T, src cache.Source) (*cache.Cache, string) {
	t.Helper()
	dir := t.TempDir()
	c, err := cache.New(cache.Config{Dir: dir, Concurrency: 4}, src)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

func site(id string, extra map[string]cachetest.File) cachetest.Deployment {
	files := map[string]cachetest.File{
		"index.html":            {Body: "<h1>" + id + "</h1>", Compress: true},
		"assets/shared-a1b2.js": {Body: "console.log('shared')"},
	}
	for k, v := range extra {
		files[k] = v
	}
	return cachetest.Deployment{ID: id, ProjectID: "prj-1", ProjectName: "app", Files: files}
}

func readAll(t *testing.T, c *cache.Cache, hash string) string {
	t.Helper()
	f, err := c.Open(hash)
	if err != nil {
		t.Fatalf("Open(%s): %v", hash, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestManifestFetchedThenLocal(t *testing.T) {
	src := cachetest.NewDir(t)
	want := src.Publish(t, site("dpl-a", nil))
	c, dir := newCache(t, src)
	ctx := t.Context()

	got, err := c.Manifest(ctx, "dpl-a")
	if err != nil {
		t.Fatal(err)
	}
	if got.DeploymentID != want.DeploymentID || len(got.Files) != len(want.Files) {
		t.Fatalf("Manifest = %+v, want %+v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifests", "dpl-a.json")); err != nil {
		t.Fatalf("local copy not stored: %v", err)
	}
	// The object store copy disappears: the local copy still answers.
	if err := os.RemoveAll(filepath.Join(src.Root, "manifests")); err != nil {
		t.Fatal(err)
	}
	gets := src.Gets()
	if _, err := c.Manifest(ctx, "dpl-a"); err != nil {
		t.Fatalf("second Manifest: %v", err)
	}
	if src.Gets() != gets {
		t.Fatalf("second Manifest went to the object store")
	}

	// A corrupt local copy is discarded and fetched again (here: missing).
	if err := os.WriteFile(filepath.Join(dir, "manifests", "dpl-a.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Manifest(ctx, "dpl-a"); !errors.Is(err, edge.ErrNotExist) {
		t.Fatalf("Manifest after corrupt local copy: err = %v, want ErrNotExist", err)
	}
}

func TestManifestMissing(t *testing.T) {
	c, _ := newCache(t, cachetest.NewDir(t))
	_, err := c.Manifest(t.Context(), "dpl-nope")
	if !errors.Is(err, edge.ErrNotExist) {
		t.Fatalf("err = %v, want edge.ErrNotExist", err)
	}
}

func TestManifestValidation(t *testing.T) {
	good := strings.Repeat("ab", 32)
	file := func(p string) map[string]edge.File { return map[string]edge.File{p: {SHA256: good, Size: 1}} }
	tests := []struct {
		name   string
		id     string // requested id; defaults to m.DeploymentID
		mutate func(m *edge.Manifest)
		raw    string // stored verbatim instead of m
		// fetchOnly: the manifest is only wrong as the answer to that id
		// (Sync of it alone is fine).
		fetchOnly bool
	}{
		{name: "version", mutate: func(m *edge.Manifest) { m.Version = 99 }},
		{name: "dotdot", mutate: func(m *edge.Manifest) { m.Files = file("../etc/passwd") }},
		{name: "inner dotdot", mutate: func(m *edge.Manifest) { m.Files = file("a/../../b") }},
		{name: "absolute", mutate: func(m *edge.Manifest) { m.Files = file("/etc/passwd") }},
		{name: "unclean", mutate: func(m *edge.Manifest) { m.Files = file("a//b") }},
		{name: "dot", mutate: func(m *edge.Manifest) { m.Files = file(".") }},
		{name: "trailing slash", mutate: func(m *edge.Manifest) { m.Files = file("a/") }},
		{name: "backslash", mutate: func(m *edge.Manifest) { m.Files = file(`a\..\b`) }},
		{name: "nul", mutate: func(m *edge.Manifest) { m.Files = file("a\x00b") }},
		{name: "empty path", mutate: func(m *edge.Manifest) { m.Files = file("") }},
		{name: "short hash", mutate: func(m *edge.Manifest) { m.Files = map[string]edge.File{"a": {SHA256: "abc"}} }},
		{name: "upper hash", mutate: func(m *edge.Manifest) {
			m.Files = map[string]edge.File{"a": {SHA256: strings.ToUpper(good)}}
		}},
		{name: "traversal hash", mutate: func(m *edge.Manifest) {
			m.Files = map[string]edge.File{"a": {SHA256: "../../../../" + good[12:]}}
		}},
		{name: "bad gzip hash", mutate: func(m *edge.Manifest) {
			m.Files = map[string]edge.File{"a": {SHA256: good, Gzip: &edge.Encoded{SHA256: "x"}}}
		}},
		{name: "negative size", mutate: func(m *edge.Manifest) { m.Files = map[string]edge.File{"a": {SHA256: good, Size: -1}} }},
		{name: "not_found missing", mutate: func(m *edge.Manifest) { m.NotFound = "404.html" }},
		{name: "id mismatch", mutate: func(m *edge.Manifest) { m.DeploymentID = "dpl-other" }, fetchOnly: true},
		{name: "not json", raw: "<html>", fetchOnly: true},
		{name: "bad id", id: "../x", fetchOnly: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := cachetest.NewDir(t)
			m := &edge.Manifest{Version: edge.ManifestVersion, DeploymentID: "dpl-v", Files: file("index.html")}
			if tt.mutate != nil {
				tt.mutate(m)
			}
			b, _ := json.Marshal(m)
			if tt.raw != "" {
				b = []byte(tt.raw)
			}
			if err := src.Write(edge.ManifestKey("dpl-v"), b); err != nil {
				t.Fatal(err)
			}
			id := tt.id
			if id == "" {
				id = "dpl-v"
			}
			c, dir := newCache(t, src)
			_, err := c.Manifest(t.Context(), id)
			if !errors.Is(err, cache.ErrInvalidManifest) {
				t.Fatalf("err = %v, want ErrInvalidManifest", err)
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "manifests")); len(ents) != 0 {
				t.Fatalf("invalid manifest stored locally: %v", ents)
			}
			if _, err := c.Sync(t.Context(), m); !tt.fetchOnly && !errors.Is(err, cache.ErrInvalidManifest) {
				t.Fatalf("Sync err = %v, want ErrInvalidManifest", err)
			}
		})
	}
}

func TestSyncHasOpen(t *testing.T) {
	src := cachetest.NewDir(t)
	dep := site("dpl-a", map[string]cachetest.File{"empty.txt": {Body: ""}})
	m := src.Publish(t, dep)
	c, dir := newCache(t, src)
	ctx := t.Context()

	if c.Has(m) {
		t.Fatal("Has before Sync")
	}
	st, err := c.Sync(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	nblobs := len(m.Blobs())
	if st.Fetched != nblobs || st.Held != 0 || st.Bytes == 0 {
		t.Fatalf("first Sync stats = %+v, want %d fetched", st, nblobs)
	}
	if !c.Has(m) {
		t.Fatal("Has after Sync = false")
	}
	for name, f := range m.Files {
		if got, want := readAll(t, c, f.SHA256), dep.Files[name].Body; got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	h := m.Files["index.html"].SHA256
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", h[:2], h)); err != nil {
		t.Fatalf("blob layout: %v", err)
	}

	st, err = c.Sync(ctx, m)
	if err != nil || st.Fetched != 0 || st.Held != nblobs {
		t.Fatalf("second Sync = %+v, %v; want all %d held", st, err, nblobs)
	}
}

func TestOpenRejectsBadHashes(t *testing.T) {
	c, _ := newCache(t, cachetest.NewDir(t))
	for _, h := range []string{"", "../../etc/passwd", strings.Repeat("0", 64), strings.Repeat("g", 64)} {
		if _, err := c.Open(h); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q): err = %v, want ErrNotExist", h, err)
		}
	}
}

func TestSyncFailures(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(t *testing.T, src *cachetest.Dir, hash string)
		wantErr error
	}{
		{
			name: "content mismatch",
			break_: func(t *testing.T, src *cachetest.Dir, h string) {
				b := []byte("tampered:" + h)[:len("<h1>dpl-a</h1>")] // same size, other bytes
				if err := src.Write(edge.BlobKey(h), b); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: cache.ErrCorrupt,
		},
		{
			name: "too long",
			break_: func(t *testing.T, src *cachetest.Dir, h string) {
				if err := src.Write(edge.BlobKey(h), []byte("<h1>dpl-a</h1> and more")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: cache.ErrCorrupt,
		},
		{
			name: "missing",
			break_: func(t *testing.T, src *cachetest.Dir, h string) {
				if err := os.Remove(filepath.Join(src.Root, filepath.FromSlash(edge.BlobKey(h)))); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: edge.ErrNotExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := cachetest.NewDir(t)
			m := src.Publish(t, site("dpl-a", nil))
			bad := m.Files["index.html"].SHA256
			tt.break_(t, src, bad)
			c, dir := newCache(t, src)

			st, err := c.Sync(t.Context(), m)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Sync err = %v, want %v", err, tt.wantErr)
			}
			if st.Fetched != len(m.Blobs())-1 {
				t.Errorf("fetched %d, want every other blob (%d)", st.Fetched, len(m.Blobs())-1)
			}
			if c.Has(m) {
				t.Error("Has = true after a failed Sync")
			}
			if _, err := c.Open(bad); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("corrupt blob kept: Open err = %v", err)
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
				t.Errorf("temp files left behind: %v", ents)
			}
		})
	}
}

func TestSyncCancelled(t *testing.T) {
	src := cachetest.NewDir(t)
	m := src.Publish(t, site("dpl-a", nil))
	c, _ := newCache(t, src)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Sync(ctx, m); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// Concurrent Syncs of overlapping manifests: every blob is downloaded
// exactly once and every manifest ends up whole.
func TestConcurrentOverlappingSyncs(t *testing.T) {
	src := cachetest.NewDir(t)
	shared := map[string]cachetest.File{}
	for i := range 20 {
		shared[fmt.Sprintf("assets/s%02d.js", i)] = cachetest.File{Body: strings.Repeat(fmt.Sprint(i), 500), Compress: true}
	}
	var ms []*edge.Manifest
	for i := range 3 {
		ms = append(ms, src.Publish(t, site(fmt.Sprintf("dpl-%d", i), shared)))
	}
	distinct := map[string]bool{}
	for _, m := range ms {
		for _, h := range m.Blobs() {
			distinct[h] = true
		}
	}
	c, _ := newCache(t, src)

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		fetched int
	)
	for i := range 12 {
		m := ms[i%len(ms)]
		wg.Go(func() {
			st, err := c.Sync(t.Context(), m)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			fetched += st.Fetched
			mu.Unlock()
		})
	}
	wg.Wait()
	if fetched != len(distinct) {
		t.Errorf("fetched %d blobs in total, want each of %d exactly once", fetched, len(distinct))
	}
	if got := src.Gets(); got != int64(len(distinct)) {
		t.Errorf("object store Gets = %d, want %d", got, len(distinct))
	}
	for _, m := range ms {
		if !c.Has(m) {
			t.Errorf("Has(%s) = false", m.DeploymentID)
		}
	}
}

func TestPrune(t *testing.T) {
	src := cachetest.NewDir(t)
	a := src.Publish(t, site("dpl-a", map[string]cachetest.File{"only-a.txt": {Body: "a"}}))
	b := src.Publish(t, site("dpl-b", map[string]cachetest.File{"only-b.txt": {Body: "b"}}))
	c, dir := newCache(t, src)
	ctx := t.Context()
	for _, id := range []string{"dpl-a", "dpl-b"} {
		m, err := c.Manifest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sync(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp", "leftover"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := c.Prune([]*edge.Manifest{a}); err != nil {
		t.Fatal(err)
	}
	if !c.Has(a) {
		t.Error("kept deployment lost blobs")
	}
	if c.Has(b) {
		t.Error("pruned deployment still whole")
	}
	if _, err := c.Open(b.Files["only-b.txt"].SHA256); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unreferenced blob kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifests", "dpl-b.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pruned manifest kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifests", "dpl-a.json")); err != nil {
		t.Errorf("kept manifest removed: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("temp files kept: %v", ents)
	}

	// Re-syncing the pruned deployment fetches only what it lost.
	inA := map[string]bool{}
	for _, h := range a.Blobs() {
		inA[h] = true
	}
	lost := 0
	for _, h := range b.Blobs() {
		if !inA[h] {
			lost++
		}
	}
	st, err := c.Sync(ctx, b)
	if err != nil || st.Fetched != lost || st.Held != len(b.Blobs())-lost {
		t.Fatalf("re-sync = %+v, %v; want exactly the %d pruned blobs fetched", st, err, lost)
	}
}

func TestNewRequiresDir(t *testing.T) {
	if _, err := cache.New(cache.Config{}, cachetest.NewDir(t)); err == nil {
		t.Fatal("New with no Dir succeeded")
	}
}
