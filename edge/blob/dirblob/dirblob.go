// Package dirblob is the embedded object store: blobs and manifests as
// plain files under one directory (`<data-dir>/blobs` in `pier dev`). It is
// the local twin of edge/blob/s3blob and passes the same conformance suite
// (edge/blob/blobtest).
//
// Writes are atomic (a temporary file in the store, then a rename), so the
// directory can be shared by several processes: a builder writing and edges
// reading at once. Keys are slash-separated, clean and relative; anything
// that could escape the directory is rejected.
//
// Only the composition root (control/cmd/pier) and tests import it; the
// consumers (jobs/build, the edge) see it through their own interfaces.
// Imports: edge, the standard library.
package dirblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pierhq/pier/edge"
)

// tmpDir is the reserved top-level folder for in-flight writes. It is on
// the same file system as every object, so the final rename is atomic.
const tmpDir = ".tmp"

// Store is a blob store on a local directory.
type Store struct {
	dir string
}

// New opens the store rooted at dir, creating the directory if needed.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("dirblob: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dirblob: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("dirblob: create store: %w", err)
	}
	return &Store{dir: abs}, nil
}

// Dir is the absolute directory the store is rooted at.
func (s *Store) Dir() string { return s.dir }

func (s *Store) file(key string) (string, error) {
	if err := edge.ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// missing reports whether err means "no object here": the file or one of
// its parents does not exist, or a parent is a regular file.
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Path returns the file holding key, for zero-copy reads (sendfile). The
// file must not be modified; it may be replaced (renamed over) at any time,
// which never affects an open descriptor. A missing key wraps
// edge.ErrNotExist.
func (s *Store) Path(key string) (string, error) {
	p, err := s.file(key)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if missing(err) {
			return "", fmt.Errorf("blob %q: %w", key, edge.ErrNotExist)
		}
		return "", fmt.Errorf("blob %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("blob %q: %w", key, edge.ErrNotExist)
	}
	return p, nil
}

// Put stores size bytes from r at key, atomically. A reader that ends
// early, yields more than size bytes or fails leaves the key unchanged.
// A negative size means "unknown": everything r yields is stored.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	p, err := s.file(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		if missing(err) || errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("put %q: a parent of the key is an object: %w", key, err)
		}
		return fmt.Errorf("put %q: %w", key, err)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), "put-*")
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var n int64
	if size >= 0 {
		// Read one byte past size to notice a reader that is too long.
		n, err = io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size+1))
	} else {
		n, err = io.Copy(f, ctxReader{ctx, r})
	}
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	switch {
	case size >= 0 && n < size:
		return fmt.Errorf("put %q: reader ended after %d of %d bytes", key, n, size)
	case size >= 0 && n > size:
		return fmt.Errorf("put %q: reader yields more than %d bytes", key, size)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if err = os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

// Get opens the object at key. A missing key wraps edge.ErrNotExist.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.file(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if missing(err) {
			return nil, fmt.Errorf("get %q: %w", key, edge.ErrNotExist)
		}
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get %q: %w", key, edge.ErrNotExist)
	}
	return f, nil
}

// Exists reports whether an object is stored at key.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	p, err := s.file(key)
	if err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if missing(err) {
			return false, nil
		}
		return false, fmt.Errorf("exists %q: %w", key, err)
	}
	return fi.Mode().IsRegular(), nil
}

// Delete removes the object at key. A missing key is not an error.
// Emptied parent folders are left in place.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.file(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if missing(err) {
			return nil
		}
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a prefix of other keys, not an object
	}
	if err := os.Remove(p); err != nil && !missing(err) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// ctxReader stops a long copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
