// Package cachetest is test support for the edge: a directory-backed
// object store (the same key layout as edge/blob/dirblob) and Publish,
// which writes a real deployment into it the way jobs/build does:
// content-addressed blobs, precompressed gzip and brotli variants, and a
// manifest under edge.ManifestKey.
//
// Only tests import it. Imports: edge.
package cachetest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/pierhq/pier/edge"
)

// Dir is an object store on local disk: key "a/b" is the file <Root>/a/b.
// It is safe for concurrent use and counts Gets.
type Dir struct {
	Root string
	gets atomic.Int64
}

// NewDir returns an empty store in a fresh t.TempDir.
func NewDir(t testing.TB) *Dir {
	t.Helper()
	return &Dir{Root: t.TempDir()}
}

// Gets reports how many Get calls the store has answered.
func (d *Dir) Gets() int64 { return d.gets.Load() }

// Get opens key; a missing key wraps edge.ErrNotExist.
func (d *Dir) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	d.gets.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !fs.ValidPath(key) {
		return nil, fmt.Errorf("get %q: %w", key, edge.ErrNotExist)
	}
	f, err := os.Open(filepath.Join(d.Root, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %q: %w", key, edge.ErrNotExist)
	}
	return f, err
}

// Put writes key from r (the dirblob / s3blob shape).
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	b, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return fmt.Errorf("put %q: got %d bytes, want %d", key, len(b), size)
	}
	return d.Write(key, b)
}

// Write stores data at key (also used to plant corrupt objects).
func (d *Dir) Write(key string, data []byte) error {
	p := filepath.Join(d.Root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// File is one file of a test deployment.
type File struct {
	Body string
	Type string // "" means by extension, else application/octet-stream
	// Compress adds gzip and brotli variants.
	Compress bool
}

// Deployment describes a test deployment.
type Deployment struct {
	ID          string
	ProjectID   string
	ProjectName string
	SPA         bool
	NotFound    string
	CreatedAt   time.Time // zero: now
	Files       map[string]File
}

// Sum is the sha256 hex of s.
func Sum(s []byte) string {
	h := sha256.Sum256(s)
	return hex.EncodeToString(h[:])
}

// Build returns the manifest of dep and its blobs by hash, without storing anything.
func Build(dep Deployment) (*edge.Manifest, map[string][]byte) {
	created := dep.CreatedAt
	if created.IsZero() {
		created = time.Now().UTC()
	}
	m := &edge.Manifest{
		Version:      edge.ManifestVersion,
		DeploymentID: dep.ID,
		ProjectID:    dep.ProjectID,
		ProjectName:  dep.ProjectName,
		CreatedAt:    created,
		SPA:          dep.SPA,
		NotFound:     dep.NotFound,
		Files:        make(map[string]edge.File, len(dep.Files)),
	}
	blobs := make(map[string][]byte)
	for name, f := range dep.Files {
		body := []byte(f.Body)
		typ := f.Type
		if typ == "" {
			typ = mime.TypeByExtension(path.Ext(name))
		}
		if typ == "" {
			typ = "application/octet-stream"
		}
		ef := edge.File{SHA256: Sum(body), Size: int64(len(body)), Type: typ}
		blobs[ef.SHA256] = body
		if f.Compress {
			var gz, br bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(body)
			zw.Close()
			bw := brotli.NewWriterLevel(&br, brotli.DefaultCompression)
			bw.Write(body)
			bw.Close()
			ef.Gzip = &edge.Encoded{SHA256: Sum(gz.Bytes()), Size: int64(gz.Len())}
			ef.Brotli = &edge.Encoded{SHA256: Sum(br.Bytes()), Size: int64(br.Len())}
			blobs[ef.Gzip.SHA256] = gz.Bytes()
			blobs[ef.Brotli.SHA256] = br.Bytes()
		}
		m.Files[name] = ef
	}
	return m, blobs
}

// Putter is the write side of an object store (edge/blob/dirblob.Store,
// edge/blob/s3blob, Dir).
type Putter interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) error
}

// Publish stores dep's blobs and then its manifest in dst, as a build
// does, and returns the manifest.
func Publish(t testing.TB, dst Putter, dep Deployment) *edge.Manifest {
	t.Helper()
	m, blobs := Build(dep)
	ctx := context.Background()
	for h, b := range blobs {
		if err := dst.Put(ctx, edge.BlobKey(h), bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatalf("publish blob: %v", err)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("publish manifest: %v", err)
	}
	if err := dst.Put(ctx, edge.ManifestKey(m.DeploymentID), bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("publish manifest: %v", err)
	}
	return m
}

// Publish stores dep in d; see the package-level Publish.
func (d *Dir) Publish(t testing.TB, dep Deployment) *edge.Manifest {
	t.Helper()
	return Publish(t, d, dep)
}
