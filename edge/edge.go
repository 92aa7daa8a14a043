// Package edge is the edge's vocabulary: the deployment Manifest the
// builder writes and every edge serves, the object-store key layout, and
// the sentinel errors shared by the blob backends.
//
// It imports only the standard library. Every package may import it: the
// manifest is the contract between jobs/build (writer) and the edge
// (reader).
package edge

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// ErrNotExist is returned (wrapped) by blob stores for a missing key.
var ErrNotExist = errors.New("blob does not exist")

// ErrInvalidKey is returned (wrapped) by blob stores for a key that
// ValidKey refuses.
var ErrInvalidKey = errors.New("invalid blob key")

// MaxKeyLen bounds object-store keys (S3's own limit).
const MaxKeyLen = 1024

// ValidKey is the one key rule of every blob store, so a key one store
// accepts every store accepts: non-empty, at most MaxKeyLen bytes,
// relative and clean (no "." or ".." elements, no empty elements, no
// leading or trailing slash), without backslashes or NUL bytes, and not
// under the reserved ".tmp/" folder (dirblob's staging area).
func ValidKey(key string) error {
	switch {
	case key == "" || len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %q: must be 1 to %d bytes", ErrInvalidKey, key, MaxKeyLen)
	case strings.ContainsAny(key, "\\\x00"):
		return fmt.Errorf("%w: %q: backslash or NUL byte", ErrInvalidKey, key)
	case key == "." || !fs.ValidPath(key):
		return fmt.Errorf("%w: %q: must be a clean relative slash path", ErrInvalidKey, key)
	case key == ".tmp" || strings.HasPrefix(key, ".tmp/"):
		return fmt.Errorf("%w: %q: .tmp/ is reserved", ErrInvalidKey, key)
	}
	return nil
}

// ManifestVersion is the version written by this build of Pier.
const ManifestVersion = 1

// Manifest describes one immutable deployment: every file it serves, by
// content hash. Files are stored once per hash in the object store under
// BlobKey, so a deployment that changes 10 files of 1,000 uploads 10 blobs.
type Manifest struct {
	Version      int             `json:"version"`
	DeploymentID string          `json:"deployment_id"`
	ProjectID    string          `json:"project_id"`
	ProjectName  string          `json:"project_name"`
	CommitSHA    string          `json:"commit_sha"`
	Framework    string          `json:"framework"`
	CreatedAt    time.Time       `json:"created_at"`
	Files        map[string]File `json:"files"` // clean relative slash path ("index.html", "assets/a.js") → file
	// SPA serves index.html for extensionless paths that match no file.
	SPA bool `json:"spa,omitempty"`
	// NotFound is the path of the custom 404 page ("404.html"), if any.
	NotFound string `json:"not_found,omitempty"`
	// Server is the deployment's server entry, if any. Requests that name
	// no file (and requests other than GET and HEAD) run its fetch
	// handler in a V8 isolate on the edge.
	Server *ServerEntry `json:"server,omitempty"`
	// Functions maps routes (see ValidRoute) to function files: manifest
	// paths of modules with the same contract as the server entry. The
	// longest matching route wins over the server entry; static files
	// still come first.
	Functions map[string]string `json:"functions,omitempty"`
	// Schedules are the server entry's scheduled functions (pier.json
	// "schedules"); they fire for the production deployment only.
	Schedules []Schedule `json:"schedules,omitempty"`
	// Queues are the queues the deployment declares with their consumers
	// (pier.json "queues").
	Queues []Queue `json:"queues,omitempty"`
}

// ServerEntry names a deployment's server code.
type ServerEntry struct {
	// Entry is the manifest path (a key of Files) of a self-contained ES
	// module whose default export has fetch(request, env, ctx), Workers
	// style ("_worker.js").
	Entry string `json:"entry"`
}

// Code reports whether the manifest path name is server code (the server
// entry or a function file). Code files are synced like any other file
// but never served as files.
func (m *Manifest) Code(name string) bool {
	if m.Server != nil && m.Server.Entry == name {
		return true
	}
	for _, f := range m.Functions {
		if f == name {
			return true
		}
	}
	return false
}

// ErrInvalidRoute is returned (wrapped) by ValidRoute.
var ErrInvalidRoute = errors.New("invalid function route")

// ValidRoute is the rule for the routes of Manifest.Functions: an
// absolute URL path of at most 1,024 bytes ("/api/hello", matched
// exactly), or one ending in "/*" ("/api/*", matching "/api" and every
// path under it; "/*" matches everything), without "." or ".." segments,
// empty segments, backslashes, "%", "?", "#", spaces, control characters
// or any other "*".
func ValidRoute(route string) error {
	base, prefix := strings.CutSuffix(route, "/*")
	if prefix && base == "" {
		return nil // "/*"
	}
	switch {
	case len(route) > MaxKeyLen || !strings.HasPrefix(base, "/") || (base == "/" && prefix):
		return fmt.Errorf("%w: %q: must be an absolute path of at most %d bytes", ErrInvalidRoute, route, MaxKeyLen)
	case strings.ContainsFunc(base, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune(`\%?#*`, r)
	}):
		return fmt.Errorf("%w: %q: only a final \"/*\" may hold a wildcard; no spaces, \"%%\", \"?\", \"#\" or backslashes", ErrInvalidRoute, route)
	}
	if base == "/" {
		return nil
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(base[1:], "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q: empty, \".\" or \"..\" segment", ErrInvalidRoute, route)
		}
	}
	return nil
}

// File is one served file.
type File struct {
	SHA256 string   `json:"sha256"` // hex, of the identity content
	Size   int64    `json:"size"`
	Type   string   `json:"type"` // Content-Type
	Gzip   *Encoded `json:"gzip,omitempty"`
	Brotli *Encoded `json:"br,omitempty"`
}

// Encoded is a precompressed variant of a File, itself a content-addressed blob.
type Encoded struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Blobs lists every blob hash the manifest references (identity and
// precompressed variants), without duplicates.
func (m *Manifest) Blobs() []string {
	seen := make(map[string]bool)
	var out []string
	add := func(h string) {
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, f := range m.Files {
		add(f.SHA256)
		if f.Gzip != nil {
			add(f.Gzip.SHA256)
		}
		if f.Brotli != nil {
			add(f.Brotli.SHA256)
		}
	}
	return out
}

// BlobKey is the object-store key of the blob with the given sha256 hex.
func BlobKey(sha256hex string) string {
	if len(sha256hex) < 2 {
		return "blobs/sha256/" + sha256hex
	}
	return "blobs/sha256/" + sha256hex[:2] + "/" + sha256hex
}

// ManifestKey is the object-store key of a deployment's manifest.
func ManifestKey(deploymentID string) string {
	return "manifests/" + deploymentID + ".json"
}
