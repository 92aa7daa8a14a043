package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

// Blobs is the part of the object store control writes to: uploaded files
// (content-addressed under edge.BlobKey), the manifests of uploaded
// deployments, and each deployment's sealed runtime environment.
type Blobs interface {
	Exists(ctx context.Context, key string) (bool, error)
	Put(ctx context.Context, key string, r io.Reader, size int64) error
}

// Upload limits.
const (
	MaxUploadFiles = 20000
	MaxBlobSize    = 100 << 20
)

var hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// UploadFile is one file of an uploaded deployment.
type UploadFile struct {
	SHA256 string `json:"sha256"` // hex of the content
	Size   int64  `json:"size"`
}

// UploadInput is a deployment of files a client sent (no build).
type UploadInput struct {
	Files       map[string]UploadFile // clean relative slash path → file
	Environment string                // production (default), preview, staging or sandbox:<name> (see Stage)
	Branch      string                // a preview's branch: its URL and variables
	SPA         bool                  // serve index.html for unknown extensionless paths
}

func (s *Service) blobs() (Blobs, error) {
	if s.deps.Blobs == nil {
		return nil, fmt.Errorf("uploads are not available: no object store is configured: %w", control.ErrConflict)
	}
	return s.deps.Blobs, nil
}

func checkFiles(files map[string]UploadFile) error {
	if len(files) == 0 || len(files) > MaxUploadFiles {
		return control.Invalid("files", "must list 1 to %d files", MaxUploadFiles)
	}
	for name, f := range files {
		if !fs.ValidPath(name) || name == "." || strings.ContainsAny(name, "\\\x00") || len(name) > 1024 {
			return control.Invalid("files", "%q is not a clean relative path", name)
		}
		if !hashRE.MatchString(f.SHA256) {
			return control.Invalid("files", "%q: sha256 must be 64 lowercase hex digits", name)
		}
		if f.Size < 0 || f.Size > MaxBlobSize {
			return control.Invalid("files", "%q: size must be 0 to %d bytes", name, MaxBlobSize)
		}
	}
	return nil
}

// MissingBlobs returns, sorted and without duplicates, the hashes of the
// files the object store does not hold yet: the only ones a client needs
// to send.
func (s *Service) MissingBlobs(ctx context.Context, projectID string, files map[string]UploadFile) ([]string, error) {
	if _, err := s.deps.Store.GetProject(ctx, projectID); err != nil {
		return nil, err
	}
	b, err := s.blobs()
	if err != nil {
		return nil, err
	}
	if err := checkFiles(files); err != nil {
		return nil, err
	}
	missing := []string{}
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.SHA256] {
			continue
		}
		seen[f.SHA256] = true
		ok, err := b.Exists(ctx, edge.BlobKey(f.SHA256))
		if err != nil {
			return nil, fmt.Errorf("check blob: %w", err)
		}
		if !ok {
			missing = append(missing, f.SHA256)
		}
	}
	slices.Sort(missing)
	return missing, nil
}

// PutBlob stores one uploaded file under its content hash, after checking
// that the content has that hash. The body is staged in a temporary file
// (at most MaxBlobSize bytes).
func (s *Service) PutBlob(ctx context.Context, projectID, sha string, r io.Reader) error {
	if _, err := s.deps.Store.GetProject(ctx, projectID); err != nil {
		return err
	}
	b, err := s.blobs()
	if err != nil {
		return err
	}
	if !hashRE.MatchString(sha) {
		return control.Invalid("sha256", "must be 64 lowercase hex digits")
	}
	tmp, err := os.CreateTemp("", "pier-upload-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, MaxBlobSize+1))
	if err != nil {
		return fmt.Errorf("read upload: %w", err)
	}
	if n > MaxBlobSize {
		return control.Invalid("body", "is larger than %d bytes", MaxBlobSize)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		return control.Invalid("body", "has sha256 %s, not %s", got, sha)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := b.Put(ctx, edge.BlobKey(sha), tmp, n); err != nil {
		return fmt.Errorf("store blob: %w", err)
	}
	return nil
}

// CreateUpload deploys a set of uploaded files without a build: every
// file must already be in the object store (MissingBlobs empty). Control
// writes the manifest, and the deployment then goes through the queue like
// any other: announced to the edges, production promoted, previews at
// their branch's URL.
func (s *Service) CreateUpload(ctx context.Context, projectID string, in UploadInput) (*control.Deployment, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	b, err := s.blobs()
	if err != nil {
		return nil, err
	}
	if in.Branch != "" && !validBranch(in.Branch) {
		return nil, control.Invalid("branch", "is not a valid branch name")
	}
	env, alias, err := Stage(in.Environment, in.Branch)
	if err != nil {
		return nil, err
	}
	missing, err := s.MissingBlobs(ctx, p.ID, in.Files)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, control.Invalid("files", "%d file(s) are not uploaded yet (first: %s)", len(missing), missing[0])
	}
	d := &control.Deployment{ID: control.NewID("dpl"), Ref: "", Branch: in.Branch, Environment: env, Alias: alias,
		Source: control.SourceUpload, Framework: "static"}
	m := &edge.Manifest{Version: edge.ManifestVersion, DeploymentID: d.ID, ProjectID: p.ID, ProjectName: p.Name,
		Framework: "static", CreatedAt: time.Now().UTC(), Files: map[string]edge.File{}, SPA: in.SPA}
	for name, f := range in.Files {
		m.Files[name] = edge.File{SHA256: f.SHA256, Size: f.Size, Type: contentType(name)}
		d.Files++
		d.Bytes += f.Size
	}
	if _, ok := m.Files["404.html"]; ok {
		m.NotFound = "404.html"
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	d.ManifestKey = edge.ManifestKey(d.ID)
	if err := b.Put(ctx, d.ManifestKey, bytes.NewReader(raw), int64(len(raw))); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	return s.create(ctx, p, d)
}

// contentType is the Content-Type of a served file, by extension.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	switch ext {
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".wasm":
		return "application/wasm"
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// RuntimeEnvKey is the object-store key of a deployment's sealed runtime
// environment, published next to its manifest when it is ready.
func RuntimeEnvKey(deploymentID string) string {
	return "env/" + deploymentID + ".json"
}

// RuntimeEnvDoc is the JSON stored at RuntimeEnvKey: the runtime-scoped
// variables frozen with the deployment, each value sealed (decrypt with
// the secrets port's Unseal).
type RuntimeEnvDoc struct {
	Version      int               `json:"version"`
	DeploymentID string            `json:"deployment_id"`
	Env          map[string]string `json:"env"` // name → ciphertext
}

// publishRuntimeEnv writes the deployment's sealed runtime environment to
// the object store (when it has one), before the edges are told about it.
func (s *Service) publishRuntimeEnv(ctx context.Context, deploymentID string) error {
	if s.deps.Blobs == nil {
		return nil
	}
	env, err := s.RuntimeEnv(ctx, deploymentID)
	if err != nil || len(env) == 0 {
		return err
	}
	raw, err := json.Marshal(RuntimeEnvDoc{Version: 1, DeploymentID: deploymentID, Env: env})
	if err != nil {
		return err
	}
	return s.deps.Blobs.Put(ctx, RuntimeEnvKey(deploymentID), bytes.NewReader(raw), int64(len(raw)))
}
