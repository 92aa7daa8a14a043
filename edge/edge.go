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
