// Package static serves one deployment's files over HTTP: URL to manifest
// path resolution (Netlify-style pretty URLs, SPA fallback, custom 404),
// strong ETags from content hashes, conditional and Range requests through
// http.ServeContent, precompressed brotli/gzip variants, and Cache-Control
// by file name (hashed assets are immutable, everything else revalidates).
//
// A URL is only ever looked up in the manifest, a map of clean relative
// paths; files are opened by content hash. No request path ever reaches the
// filesystem, and paths with "..", backslashes or NULs are refused.
//
// It is imported by edge/edged. Imports: edge.
package static

import (
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pierhq/pier/edge"
)

// Files opens blobs by sha256 hex; *cache.Cache (edge/cache) satisfies it.
type Files interface {
	Open(hash string) (*os.File, error)
}

// Cache-Control values.
const (
	CacheImmutable   = "public, max-age=31536000, immutable"
	CacheRevalidate  = "public, max-age=0, must-revalidate"
	allowedMethods   = "GET, HEAD"
	errBadPath       = "bad request path"
	errNotFound      = "not found"
	errUnavailable   = "deployment files are unavailable, try again shortly"
	errNotAllowed    = "method not allowed"
	indexFile        = "index.html"
	htmlExt          = ".html"
	nextStaticPrefix = "_next/static/"
)

// Serve answers r with the file of m that its URL path resolves to.
//
//   - GET and HEAD only; anything else is 405 with Allow.
//   - A path with a ".." segment (also when percent-encoded), a backslash
//     or a NUL is 400.
//   - "/" and "/dir/" serve index.html, "/about" serves about, about.html
//     or about/index.html, in that order.
//   - No match: with m.SPA and no extension in the last segment,
//     index.html (200); else m.NotFound with status 404; else a plain 404.
func Serve(w http.ResponseWriter, r *http.Request, m *edge.Manifest, files Files) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", allowedMethods)
		http.Error(w, errNotAllowed, http.StatusMethodNotAllowed)
		return
	}
	rel, dir, ok := cleanPath(r.URL.Path)
	if !ok {
		http.Error(w, errBadPath, http.StatusBadRequest)
		return
	}
	if name, ok := resolve(m, rel, dir); ok {
		serveFile(w, r, m, name, http.StatusOK, files)
		return
	}
	if m.SPA && path.Ext(path.Base("/"+rel)) == "" {
		if _, ok := m.Files[indexFile]; ok {
			serveFile(w, r, m, indexFile, http.StatusOK, files)
			return
		}
	}
	if m.NotFound != "" {
		if _, ok := m.Files[m.NotFound]; ok {
			serveFile(w, r, m, m.NotFound, http.StatusNotFound, files)
			return
		}
	}
	http.Error(w, errNotFound, http.StatusNotFound)
}

// Lookup reports which file of m urlPath names, without the SPA and 404
// fallbacks (so a caller can try other manifests first, as the edge's skew
// protection does). ok is false for paths Serve would refuse.
func Lookup(m *edge.Manifest, urlPath string) (name string, ok bool) {
	rel, dir, ok := cleanPath(urlPath)
	if !ok {
		return "", false
	}
	return resolve(m, rel, dir)
}

// cleanPath turns a decoded URL path into a manifest path ("" for the
// root) and whether it named a directory (trailing slash). ok is false for
// paths that try to leave the site.
func cleanPath(p string) (rel string, dir, ok bool) {
	if strings.ContainsAny(p, "\\\x00") {
		return "", false, false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." {
			return "", false, false
		}
	}
	dir = strings.HasSuffix(p, "/")
	rel = strings.TrimPrefix(path.Clean("/"+p), "/")
	return rel, dir, true
}

// resolve maps a clean relative path to a file of m.
func resolve(m *edge.Manifest, rel string, dir bool) (string, bool) {
	if rel == "" {
		_, ok := m.Files[indexFile]
		return indexFile, ok
	}
	if dir {
		name := rel + "/" + indexFile
		_, ok := m.Files[name]
		return name, ok
	}
	for _, name := range [...]string{rel, rel + htmlExt, rel + "/" + indexFile} {
		if _, ok := m.Files[name]; ok {
			return name, true
		}
	}
	return "", false
}

func serveFile(w http.ResponseWriter, r *http.Request, m *edge.Manifest, name string, status int, files Files) {
	f := m.Files[name]
	h := w.Header()

	blob, size, enc := f.SHA256, f.Size, ""
	if f.Gzip != nil || f.Brotli != nil {
		h.Add("Vary", "Accept-Encoding")
		// Range requests get identity: byte ranges of a compressed body
		// would confuse every client.
		if r.Header.Get("Range") == "" {
			switch negotiate(r.Header.Values("Accept-Encoding"), f.Brotli != nil, f.Gzip != nil) {
			case "br":
				blob, size, enc = f.Brotli.SHA256, f.Brotli.Size, "br"
			case "gzip":
				blob, size, enc = f.Gzip.SHA256, f.Gzip.Size, "gzip"
			}
		}
	}
	file, err := files.Open(blob)
	if err != nil && enc != "" { // a missing variant is no reason to fail
		blob, size, enc = f.SHA256, f.Size, ""
		file, err = files.Open(blob)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, errUnavailable, http.StatusServiceUnavailable)
			return
		}
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	defer file.Close()

	h.Set("Content-Type", contentType(name, f))
	if status == http.StatusOK && Hashed(name) && !isHTML(name, f) {
		h.Set("Cache-Control", CacheImmutable)
	} else {
		h.Set("Cache-Control", CacheRevalidate)
	}
	if enc != "" {
		h.Set("Content-Encoding", enc)
		// ServeContent leaves Content-Length out when Content-Encoding is set.
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}

	if status == http.StatusOK {
		h.Set("ETag", `"`+blob+`"`)
		http.ServeContent(w, r, name, time.Time{}, file)
		return
	}
	// An error page: no validators, no ranges.
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.CopyN(w, file, size)
	}
}

func contentType(name string, f edge.File) string {
	if f.Type != "" {
		return f.Type
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func isHTML(name string, f edge.File) bool {
	return strings.HasSuffix(name, htmlExt) || strings.HasSuffix(name, ".htm") ||
		strings.HasPrefix(f.Type, "text/html")
}

// negotiate picks the content coding for an Accept-Encoding header: br or
// gzip (when the variant exists and its q is above 0, the higher q winning
// and br winning ties), or "" for identity.
func negotiate(header []string, haveBr, haveGzip bool) string {
	qBr, qGzip, qStar := -1.0, -1.0, -1.0
	for _, v := range header {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					q = f
				}
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "br":
				qBr = q
			case "gzip", "x-gzip":
				qGzip = q
			case "*":
				qStar = q
			}
		}
	}
	if qBr < 0 {
		qBr = max(qStar, 0)
	}
	if qGzip < 0 {
		qGzip = max(qStar, 0)
	}
	if !haveBr {
		qBr = 0
	}
	if !haveGzip {
		qGzip = 0
	}
	switch {
	case qBr > 0 && qBr >= qGzip:
		return "br"
	case qGzip > 0:
		return "gzip"
	}
	return ""
}

// Hashed reports whether a manifest path names a content-hashed asset,
// which may be cached forever: anything under _next/static/, or a file
// whose name carries a hash-like token of 8 or more letters, digits or
// underscores, with at least one digit and one letter, either as a dotted
// part after the first ("main.3f2a9c1e.css") or after the last dash of a
// part ("index-BwD3k9aQ.js"). Tokens that look like words (a run of five or
// more lowercase letters, unless the token is all hex) do not count: a
// false positive pins a mutable file in browsers for a year, a false
// negative only costs a revalidation.
func Hashed(name string) bool {
	if strings.HasPrefix(name, nextStaticPrefix) || strings.HasPrefix(name, svelteKitImmutablePrefix) || viteAsset.MatchString(name) {
		return true
	}
	parts := strings.Split(path.Base(name), ".")
	if len(parts) < 2 {
		return false
	}
	for i, part := range parts[:len(parts)-1] { // the last part is the extension
		if i > 0 && hashLike(part) {
			return true
		}
		if j := strings.LastIndexByte(part, '-'); j >= 0 && hashLike(part[j+1:]) {
			return true
		}
	}
	return false
}

// svelteKitImmutablePrefix is where SvelteKit puts its content-hashed output.
const svelteKitImmutablePrefix = "_app/immutable/"

// viteAsset is Vite's (Rollup's) default asset name: assets/<name>-<8
// base64url characters>.<ext>. The hash may lack digits, which hashLike
// would need, so the directory and exact length decide.
var viteAsset = regexp.MustCompile(`^assets/[^/]+-[A-Za-z0-9_-]{8}\.[A-Za-z0-9]+$`)

func hashLike(tok string) bool {
	if len(tok) < 8 {
		return false
	}
	digits, letters, run, maxRun, hex := 0, 0, 0, 0, true
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			run = 0
		case c >= 'a' && c <= 'z':
			letters++
			run++
			maxRun = max(maxRun, run)
			hex = hex && c <= 'f'
		case c >= 'A' && c <= 'Z', c == '_':
			letters++
			run = 0
			hex = false
		default:
			return false
		}
	}
	return digits > 0 && letters > 0 && (hex || maxRun < 5)
}
