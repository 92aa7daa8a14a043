package build

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
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/andybalholm/brotli"
	"golang.org/x/sync/errgroup"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/jobs"
)

const (
	// minCompress is the smallest file worth precompressing.
	minCompress = 1 << 10
	// maxInMemory is the largest file read whole (hashed, compressed and
	// uploaded from memory); larger files are streamed.
	maxInMemory = 32 << 20
	// maxBrotliBest is the largest file compressed at brotli's best
	// (slowest) quality; larger ones use a faster one.
	maxBrotliBest = 2 << 20
)

// publishFile is one regular file of the output.
type publishFile struct {
	name string // slash path relative to the output directory
}

// checkOutputDir validates the configured output directory: relative,
// without "..", inside the checkout.
func checkOutputDir(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	slash := filepath.ToSlash(dir)
	bad := filepath.IsAbs(dir) || strings.HasPrefix(slash, "/") || strings.ContainsRune(dir, 0) || strings.ContainsRune(dir, '\\')
	for _, el := range strings.Split(slash, "/") {
		if el == ".." {
			bad = true
		}
	}
	if bad || !filepath.IsLocal(dir) {
		msg := fmt.Sprintf("invalid output directory %q: it must be a relative path inside the repository", dir)
		return "", public(msg, errors.New("bad output dir"))
	}
	return path.Clean(slash), nil
}

// publish uploads the output directory and writes the manifest, last.
func (b *builder) publish(ctx context.Context, plan Plan, res *jobs.BuildResult) error {
	outDir, err := checkOutputDir(plan.OutputDir)
	if err != nil {
		return err
	}
	notFound := public(fmt.Sprintf("output directory %q not found", plan.OutputDir), errors.New("no output"))
	repo, err := os.OpenRoot(b.src)
	if err != nil {
		return fmt.Errorf("open checkout: %w", err)
	}
	defer repo.Close()
	fi, err := repo.Stat(outDir)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return notFound
	case err != nil:
		// Root refuses a path that leaves the checkout through a symlink.
		return public(fmt.Sprintf("invalid output directory %q: it must be inside the repository", plan.OutputDir), err)
	case !fi.IsDir():
		return public(fmt.Sprintf("output directory %q is not a directory", plan.OutputDir), errors.New("not a dir"))
	}
	out, err := repo.OpenRoot(outDir)
	if err != nil {
		return public(fmt.Sprintf("invalid output directory %q: it must be inside the repository", plan.OutputDir), err)
	}
	defer out.Close()

	b.log.Printf("==> Collecting output from %s", plan.OutputDir)
	files, err := b.collect(out, outDir == ".")
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return public(fmt.Sprintf("output directory %q is empty", plan.OutputDir), errors.New("empty output"))
	}
	b.log.Printf("==> Uploading %d files", len(files))

	m := &edge.Manifest{
		Version:      edge.ManifestVersion,
		DeploymentID: b.req.DeploymentID,
		ProjectID:    b.req.ProjectID,
		ProjectName:  b.req.ProjectName,
		CommitSHA:    res.CommitSHA,
		Framework:    plan.Framework,
		CreatedAt:    time.Now().UTC(),
		Files:        make(map[string]edge.File, len(files)),
	}
	u := &uploads{up: b.up, claimed: make(map[string]bool)}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadWorkers)
	for _, f := range files {
		g.Go(func() error {
			ef, ok, err := b.publishOne(gctx, out, f, u)
			if err != nil || !ok {
				return err
			}
			mu.Lock()
			m.Files[f.name] = ef
			res.Bytes += ef.Size
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var be *buildError
		if errors.As(err, &be) {
			return err
		}
		return public("upload failed", err)
	}
	res.Files = len(m.Files)
	res.Uploaded = int(u.uploaded.Load())
	if err := b.markCode(repo, outDir, m); err != nil {
		return err
	}

	var html int
	for name := range m.Files {
		if strings.HasSuffix(name, ".html") || strings.HasSuffix(name, ".htm") {
			html++
		}
	}
	_, hasIndex := m.Files["index.html"]
	m.SPA = plan.Framework == FrameworkVite || (hasIndex && html == 1)
	if _, ok := m.Files["404.html"]; ok {
		m.NotFound = "404.html"
	}

	// The manifest goes last: its existence means every blob is there.
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	key := edge.ManifestKey(b.req.DeploymentID)
	if err := b.up.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return public("upload failed", fmt.Errorf("put manifest: %w", err))
	}
	res.ManifestKey = key
	return nil
}

// collect walks the output directory: regular files, and symbolic links
// that resolve to a regular file inside it. Other links are skipped with a
// warning and never followed.
func (b *builder) collect(out *os.Root, isRepoRoot bool) ([]publishFile, error) {
	var files []publishFile
	err := fs.WalkDir(out.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			b.log.Printf("==> warning: skipping %s: %v", p, pathErr(err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if p == "." {
			return nil
		}
		if d.IsDir() {
			if d.Name() == ".git" || (isRepoRoot && p == "node_modules") {
				return fs.SkipDir
			}
			return nil
		}
		if isRepoRoot && p == ConfigFile {
			return nil // Pier's own settings, not a page
		}
		if !utf8.ValidString(p) {
			b.log.Printf("==> warning: skipping %q: file name is not valid UTF-8", p)
			return nil
		}
		switch t := d.Type(); {
		case t.IsRegular():
			files = append(files, publishFile{name: p})
		case t&fs.ModeSymlink != 0:
			fi, err := out.Stat(p) // follows the link, only inside the output dir
			switch {
			case err != nil:
				b.log.Printf("==> warning: skipping symlink %s: it points outside the output directory or nowhere", p)
			case !fi.Mode().IsRegular():
				b.log.Printf("==> warning: skipping symlink %s: it does not point to a regular file", p)
			default:
				files = append(files, publishFile{name: p})
			}
		default:
			b.log.Printf("==> warning: skipping %s: not a regular file", p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk output: %w", err)
	}
	return files, nil
}

// uploads tracks which blobs this build has handled.
type uploads struct {
	up       Uploader
	mu       sync.Mutex
	claimed  map[string]bool
	uploaded atomic.Int64
}

// put uploads the blob with hash sum unless this build already did or the
// store has it.
func (u *uploads) put(ctx context.Context, sum string, size int64, open func() (io.Reader, error)) error {
	u.mu.Lock()
	if u.claimed[sum] {
		u.mu.Unlock()
		return nil
	}
	u.claimed[sum] = true
	u.mu.Unlock()
	key := edge.BlobKey(sum)
	ok, err := u.up.Exists(ctx, key)
	if err != nil {
		return fmt.Errorf("exists %s: %w", key, err)
	}
	if ok {
		return nil
	}
	r, err := open()
	if err != nil {
		return err
	}
	if err := u.up.Put(ctx, key, r, size); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	u.uploaded.Add(1)
	return nil
}

// publishOne hashes, precompresses and uploads one file. ok is false when
// the file turned out not to be publishable (it changed under us).
func (b *builder) publishOne(ctx context.Context, out *os.Root, pf publishFile, u *uploads) (edge.File, bool, error) {
	// O_NONBLOCK: a FIFO swapped in after the walk must not hang the open.
	f, err := out.OpenFile(pf.name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		b.log.Printf("==> warning: skipping %s: %v", pf.name, pathErr(err))
		return edge.File{}, false, nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		b.log.Printf("==> warning: skipping %s: not a regular file", pf.name)
		return edge.File{}, false, nil
	}

	var ef edge.File
	if fi.Size() > b.maxMem {
		h := sha256.New()
		head := make([]byte, 512)
		n, _ := io.ReadFull(f, head)
		size, err := io.Copy(h, io.MultiReader(bytes.NewReader(head[:n]), f))
		if err != nil {
			return ef, false, fmt.Errorf("read %s: %w", pf.name, err)
		}
		ef = edge.File{SHA256: hex.EncodeToString(h.Sum(nil)), Size: size, Type: contentType(pf.name, head[:n])}
		err = u.put(ctx, ef.SHA256, size, func() (io.Reader, error) {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			return io.LimitReader(f, size), nil
		})
		return ef, err == nil, err
	}

	data, err := io.ReadAll(io.LimitReader(f, b.maxMem+1))
	if err != nil {
		return ef, false, fmt.Errorf("read %s: %w", pf.name, err)
	}
	sum := sha256.Sum256(data)
	ef = edge.File{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Type: contentType(pf.name, data)}
	if err := u.put(ctx, ef.SHA256, ef.Size, func() (io.Reader, error) { return bytes.NewReader(data), nil }); err != nil {
		return ef, false, err
	}
	if len(data) < minCompress || !compressible(ef.Type) {
		return ef, true, nil
	}
	for _, enc := range []struct {
		dst *(*edge.Encoded)
		fn  func([]byte) ([]byte, error)
	}{{&ef.Gzip, gzipBytes}, {&ef.Brotli, brotliBytes}} {
		z, err := enc.fn(data)
		if err != nil {
			return ef, false, fmt.Errorf("compress %s: %w", pf.name, err)
		}
		if len(z) >= len(data) {
			continue
		}
		zs := sha256.Sum256(z)
		e := &edge.Encoded{SHA256: hex.EncodeToString(zs[:]), Size: int64(len(z))}
		if err := u.put(ctx, e.SHA256, e.Size, func() (io.Reader, error) { return bytes.NewReader(z), nil }); err != nil {
			return ef, false, err
		}
		*enc.dst = e
	}
	return ef, true, nil
}

// gzipBytes compresses deterministically (no name, no mod time), so the
// same file always gives the same blob.
func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func brotliBytes(data []byte) ([]byte, error) {
	q := brotli.BestCompression
	if len(data) > maxBrotliBest {
		q = 6
	}
	var buf bytes.Buffer
	zw := brotli.NewWriterLevel(&buf, q)
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// webTypes fixes the Content-Type of common web files, independent of the
// host's mime tables.
var webTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".cjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".xml":         "application/xml",
	".rss":         "application/rss+xml",
	".atom":        "application/atom+xml",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".eot":         "application/vnd.ms-fontobject",
	".wasm":        "application/wasm",
	".pdf":         "application/pdf",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
	".ogg":         "audio/ogg",
	".wav":         "audio/wav",
	".zip":         "application/zip",
}

// contentType picks a file's Content-Type: the web table, then the host's
// mime tables, then sniffing the content.
func contentType(name string, head []byte) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := webTypes[ext]; ok {
		return t
	}
	if ext != "" {
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
	}
	return http.DetectContentType(head)
}

// compressible reports whether precompressing content of type t pays off.
func compressible(t string) bool {
	mt, _, _ := strings.Cut(t, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	switch {
	case strings.HasPrefix(mt, "text/"), strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/javascript", "application/x-javascript", "application/json", "application/xml",
		"application/wasm", "image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
		"font/ttf", "font/otf", "application/vnd.ms-fontobject", "application/x-font-ttf":
		return true
	}
	return false
}

// pathErr is err without the absolute path a *fs.PathError carries.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
