// Package cache is the edge's local content-addressed cache: deployment
// manifests and the blobs they reference, fetched from the object store
// (edge/blob/dirblob or edge/blob/s3blob, reached through the Source port),
// verified by sha256 while streaming, and kept on local disk:
//
//	<dir>/manifests/<deployment-id>.json
//	<dir>/blobs/sha256/<aa>/<hash>
//	<dir>/tmp/                          partial downloads, renamed into place when verified
//
// A blob is either absent or whole and correct: nothing that failed its
// hash or size check is ever renamed into place.
//
// It is imported by edge/edged (and by tests). Imports: edge.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pierhq/pier/edge"
)

// Errors callers branch on.
var (
	// ErrInvalidManifest: a manifest failed validation (bad version, path or hash).
	ErrInvalidManifest = errors.New("invalid manifest")
	// ErrCorrupt: a fetched blob did not match its manifest hash or size.
	ErrCorrupt = errors.New("blob content does not match its hash")
)

// maxManifestSize bounds how much of a manifest object is read.
const maxManifestSize = 64 << 20

// Source is the object store the cache fetches from. Get returns an error
// wrapping edge.ErrNotExist for a missing key.
type Source interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// Config configures a Cache.
type Config struct {
	Dir         string       // required: the cache root
	Concurrency int          // blob downloads in flight per Sync; 0 means 16
	Logger      *slog.Logger // nil: discard
}

// DefaultConfig returns the defaults for everything but Dir.
func DefaultConfig() Config { return Config{Concurrency: 16} }

// SyncStats counts what one Sync did.
type SyncStats struct {
	Fetched int   // blobs downloaded and verified
	Bytes   int64 // bytes downloaded
	Held    int   // blobs already held locally (or fetched by a concurrent Sync)
}

// Cache is safe for concurrent use.
type Cache struct {
	dir, blobDir, manDir, tmpDir string
	src                          Source
	concurrency                  int
	log                          *slog.Logger

	// pruneMu: Sync and manifest writes hold it shared, Prune exclusively,
	// so Prune never deletes a blob a running Sync counted as held nor
	// clears a temp file being written.
	pruneMu sync.RWMutex

	mu       sync.Mutex
	inflight map[string]chan struct{} // blob hash -> closed when that fetch ends
}

// New returns a cache rooted at cfg.Dir, creating its directories.
func New(cfg Config, src Source) (*Cache, error) {
	if src == nil {
		panic("cache: nil Source")
	}
	if cfg.Dir == "" {
		return nil, errors.New("cache: no directory configured")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConfig().Concurrency
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		dir:         cfg.Dir,
		blobDir:     filepath.Join(cfg.Dir, "blobs", "sha256"),
		manDir:      filepath.Join(cfg.Dir, "manifests"),
		tmpDir:      filepath.Join(cfg.Dir, "tmp"),
		src:         src,
		concurrency: cfg.Concurrency,
		log:         log.With("component", "edge.cache"),
		inflight:    make(map[string]chan struct{}),
	}
	for _, d := range []string{c.blobDir, c.manDir, c.tmpDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create cache directory: %w", err)
		}
	}
	return c, nil
}

// Manifest returns the manifest of deploymentID: the local copy if there
// is a valid one, else the object store's (edge.ManifestKey), which is then
// stored locally. A missing manifest yields an error wrapping
// edge.ErrNotExist; an invalid one, ErrInvalidManifest.
func (c *Cache) Manifest(ctx context.Context, deploymentID string) (*edge.Manifest, error) {
	if err := validID(deploymentID); err != nil {
		return nil, err
	}
	local := filepath.Join(c.manDir, deploymentID+".json")
	if b, err := os.ReadFile(local); err == nil {
		m, err := decodeManifest(b, deploymentID)
		if err == nil {
			return m, nil
		}
		c.log.Warn("discarding invalid local manifest", "deployment", deploymentID, "err", err)
		_ = os.Remove(local)
	}

	rc, err := c.src.Get(ctx, edge.ManifestKey(deploymentID))
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %s: %w", deploymentID, err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", deploymentID, err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("%w: manifest %s is larger than %d bytes", ErrInvalidManifest, deploymentID, maxManifestSize)
	}
	m, err := decodeManifest(b, deploymentID)
	if err != nil {
		return nil, err
	}
	if err := c.writeManifest(local, b); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *Cache) writeManifest(dst string, b []byte) error {
	c.pruneMu.RLock()
	defer c.pruneMu.RUnlock()
	tmp, err := os.CreateTemp(c.tmpDir, "manifest-*")
	if err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("store manifest: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	return nil
}

func decodeManifest(b []byte, deploymentID string) (*edge.Manifest, error) {
	var m edge.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", ErrInvalidManifest, deploymentID, err)
	}
	if m.DeploymentID != deploymentID {
		return nil, fmt.Errorf("%w: manifest at %s names deployment %q", ErrInvalidManifest, deploymentID, m.DeploymentID)
	}
	if err := Validate(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks a manifest before anything is fetched or served from it:
// the version is known, the deployment ID is safe in a file name, every
// path is clean, relative and free of "..", backslashes and NULs, every
// hash is 64 lowercase hex digits, and NotFound names a file. Errors wrap
// ErrInvalidManifest.
func Validate(m *edge.Manifest) error {
	if m == nil {
		return fmt.Errorf("%w: nil", ErrInvalidManifest)
	}
	if m.Version != edge.ManifestVersion {
		return fmt.Errorf("%w: unsupported version %d", ErrInvalidManifest, m.Version)
	}
	if err := validID(m.DeploymentID); err != nil {
		return err
	}
	for p, f := range m.Files {
		if !validPath(p) {
			return fmt.Errorf("%w: bad file path %q", ErrInvalidManifest, p)
		}
		if !validHash(f.SHA256) || f.Size < 0 {
			return fmt.Errorf("%w: file %q: bad sha256 or size", ErrInvalidManifest, p)
		}
		for _, e := range []*edge.Encoded{f.Gzip, f.Brotli} {
			if e != nil && (!validHash(e.SHA256) || e.Size < 0) {
				return fmt.Errorf("%w: file %q: bad encoded variant", ErrInvalidManifest, p)
			}
		}
	}
	if m.NotFound != "" {
		if _, ok := m.Files[m.NotFound]; !ok {
			return fmt.Errorf("%w: not_found page %q is not a file", ErrInvalidManifest, m.NotFound)
		}
	}
	return nil
}

func validID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' || id[0] == '-' {
		return fmt.Errorf("%w: bad deployment id %q", ErrInvalidManifest, id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w: bad deployment id %q", ErrInvalidManifest, id)
		}
	}
	return nil
}

func validPath(p string) bool {
	if p == "" || p == "." || p[0] == '/' || path.Clean(p) != p || !utf8.ValidString(p) ||
		strings.ContainsAny(p, "\\\x00") {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." {
			return false
		}
	}
	return true
}

func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !(h[i] >= '0' && h[i] <= '9' || h[i] >= 'a' && h[i] <= 'f') {
			return false
		}
	}
	return true
}

// blobSizes maps every blob hash of m to its size.
func blobSizes(m *edge.Manifest) map[string]int64 {
	out := make(map[string]int64, len(m.Files))
	for _, f := range m.Files {
		out[f.SHA256] = f.Size
		if f.Gzip != nil {
			out[f.Gzip.SHA256] = f.Gzip.Size
		}
		if f.Brotli != nil {
			out[f.Brotli.SHA256] = f.Brotli.Size
		}
	}
	return out
}

func (c *Cache) blobPath(h string) string {
	return filepath.Join(c.blobDir, h[:2], h)
}

func (c *Cache) held(h string, size int64) bool {
	fi, err := os.Stat(c.blobPath(h))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// Has reports whether every blob of m is held locally.
func (c *Cache) Has(m *edge.Manifest) bool {
	if Validate(m) != nil {
		return false
	}
	for h, size := range blobSizes(m) {
		if !c.held(h, size) {
			return false
		}
	}
	return true
}

// Open opens the blob with the given sha256 hex. A blob that is not held
// yields an error wrapping fs.ErrNotExist.
func (c *Cache) Open(hash string) (*os.File, error) {
	if !validHash(hash) {
		return nil, fmt.Errorf("open blob %q: %w", hash, fs.ErrNotExist)
	}
	return os.Open(c.blobPath(hash))
}

// Sync fetches every blob of m that is not held locally, Concurrency at a
// time, verifying size and sha256 while streaming. Concurrent Syncs of
// overlapping manifests share downloads. On error the blobs that did
// verify are kept; the error joins the failures (each wrapping the Source
// error or ErrCorrupt).
func (c *Cache) Sync(ctx context.Context, m *edge.Manifest) (SyncStats, error) {
	var st SyncStats
	if err := Validate(m); err != nil {
		return st, err
	}
	c.pruneMu.RLock()
	defer c.pruneMu.RUnlock()

	sizes := blobSizes(m)
	var missing []string
	for _, h := range m.Blobs() {
		if c.held(h, sizes[h]) {
			st.Held++
		} else {
			missing = append(missing, h)
		}
	}

	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, c.concurrency)
	)
loop:
	for _, h := range missing {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			mu.Lock()
			errs = append(errs, ctx.Err())
			mu.Unlock()
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			n, fetched, err := c.ensure(ctx, h, sizes[h])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case fetched:
				st.Fetched++
				st.Bytes += n
			default:
				st.Held++
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		if len(errs) > 5 {
			errs = append(errs[:5], fmt.Errorf("and %d more errors", len(errs)-5))
		}
		return st, fmt.Errorf("sync deployment %s: %w", m.DeploymentID, errors.Join(errs...))
	}
	c.log.Debug("deployment synced", "deployment", m.DeploymentID,
		"fetched", st.Fetched, "bytes", st.Bytes, "held", st.Held)
	return st, nil
}

// ensure makes blob h held, fetching it unless another goroutine is
// already doing so, in which case it waits and re-checks. fetched reports
// whether this call downloaded it.
func (c *Cache) ensure(ctx context.Context, h string, size int64) (n int64, fetched bool, err error) {
	for {
		if c.held(h, size) {
			return 0, false, nil
		}
		c.mu.Lock()
		done, busy := c.inflight[h]
		if !busy {
			done = make(chan struct{})
			c.inflight[h] = done
		}
		c.mu.Unlock()
		if busy {
			select {
			case <-done:
				continue // held now, or that fetch failed and we try ourselves
			case <-ctx.Done():
				return 0, false, ctx.Err()
			}
		}
		if c.held(h, size) { // a fetch finished between our check and taking the slot
			err = nil
		} else {
			n, err = c.fetch(ctx, h, size)
			fetched = err == nil
		}
		c.mu.Lock()
		delete(c.inflight, h)
		close(done)
		c.mu.Unlock()
		return n, fetched, err
	}
}

// fetch downloads blob h into a temp file, verifies it and renames it into place.
func (c *Cache) fetch(ctx context.Context, h string, size int64) (int64, error) {
	rc, err := c.src.Get(ctx, edge.BlobKey(h))
	if err != nil {
		return 0, fmt.Errorf("fetch blob %s: %w", h, err)
	}
	defer rc.Close()

	tmp, err := os.CreateTemp(c.tmpDir, h[:16]+"-*")
	if err != nil {
		return 0, fmt.Errorf("fetch blob %s: %w", h, err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), io.LimitReader(rc, size+1))
	if err != nil {
		return n, fmt.Errorf("fetch blob %s: %w", h, err)
	}
	if n != size {
		return n, fmt.Errorf("blob %s: got %d bytes, want %d: %w", h, n, size, ErrCorrupt)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h {
		return n, fmt.Errorf("blob %s: got sha256 %s: %w", h, got, ErrCorrupt)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return n, fmt.Errorf("store blob %s: %w", h, err)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("store blob %s: %w", h, err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("store blob %s: %w", h, err)
	}
	dst := c.blobPath(h)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return n, fmt.Errorf("store blob %s: %w", h, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return n, fmt.Errorf("store blob %s: %w", h, err)
	}
	keep = true
	return n, nil
}

// Prune deletes every blob that no manifest in keep references, the local
// manifests of deployments not in keep, and leftover temp files. It waits
// for running Syncs to finish and blocks new ones while it runs.
func (c *Cache) Prune(keep []*edge.Manifest) error {
	c.pruneMu.Lock()
	defer c.pruneMu.Unlock()

	blobs := make(map[string]bool)
	ids := make(map[string]bool)
	for _, m := range keep {
		if m == nil {
			continue
		}
		ids[m.DeploymentID+".json"] = true
		for _, h := range m.Blobs() {
			blobs[h] = true
		}
	}

	var errs []error
	removed := 0
	shards, err := os.ReadDir(c.blobDir)
	if err != nil {
		return fmt.Errorf("prune cache: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		dir := filepath.Join(c.blobDir, sh.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			if blobs[e.Name()] {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			removed++
		}
	}
	if ents, err := os.ReadDir(c.manDir); err == nil {
		for _, e := range ents {
			if !ids[e.Name()] {
				if err := os.Remove(filepath.Join(c.manDir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
	}
	if ents, err := os.ReadDir(c.tmpDir); err == nil {
		for _, e := range ents {
			_ = os.RemoveAll(filepath.Join(c.tmpDir, e.Name()))
		}
	}
	c.log.Debug("cache pruned", "removed_blobs", removed, "kept_deployments", len(ids))
	if len(errs) > 0 {
		return fmt.Errorf("prune cache: %w", errors.Join(errs...))
	}
	return nil
}
