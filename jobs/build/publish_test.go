package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/jobs"
)

// Files over the in-memory limit are streamed: hashed, then uploaded from
// the file, without precompressed variants.
func TestPublishStreamsLargeFiles(t *testing.T) {
	store, err := dirblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	big := bytes.Repeat([]byte("streamed content\n"), 4096) // 68 KiB of text
	files := map[string][]byte{
		"out/big.txt":       big,
		"out/noext":         []byte("%PDF-1.7 sniffed"),
		"out/small.css":     bytes.Repeat([]byte("a{b:c}"), 300),
		"out/.well-known/x": []byte("{}"),
	}
	for name, b := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	b := &builder{
		up:     store,
		req:    jobs.BuildRequest{DeploymentID: "dpl-big"},
		log:    newLogWriter(&log, slog.New(slog.DiscardHandler)),
		logger: slog.New(slog.DiscardHandler),
		maxMem: 16 << 10,
		src:    src,
	}
	res := &jobs.BuildResult{}
	if err := b.publish(t.Context(), Plan{Framework: FrameworkOther, OutputDir: "out"}, res); err != nil {
		t.Fatalf("publish: %v\n%s", err, log.String())
	}
	m := &edge.Manifest{}
	rc, err := store.Get(t.Context(), res.ManifestKey)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(big)
	f := m.Files["big.txt"]
	if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(big)) || f.Gzip != nil || f.Type != "text/plain; charset=utf-8" {
		t.Fatalf("big.txt = %+v", f)
	}
	p, err := store.Path(edge.BlobKey(f.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, big) {
		t.Fatal("streamed blob differs from the file")
	}
	if got := m.Files["noext"].Type; got != "application/pdf" {
		t.Errorf("noext type = %q, want sniffed application/pdf", got)
	}
	if m.Files["small.css"].Gzip == nil {
		t.Error("small.css (under the limit) got no gzip variant")
	}
	if _, ok := m.Files[".well-known/x"]; !ok {
		t.Error("dot directories are published (only .git is skipped)")
	}
	if res.Files != 4 || res.Uploaded != len(m.Blobs()) {
		t.Errorf("files %d uploaded %d; want 4, %d", res.Files, res.Uploaded, len(m.Blobs()))
	}
}
