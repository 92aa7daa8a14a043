package dirblob_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/blob/blobtest"
	"github.com/pierhq/pier/edge/blob/dirblob"
)

var _ blobtest.Store = (*dirblob.Store)(nil)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Store {
		s, err := dirblob.New(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Invalid keys never touch anything outside the store's directory.
func TestNoEscape(t *testing.T) {
	parent := t.TempDir()
	s, err := dirblob.New(filepath.Join(parent, "store", "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, key := range []string{"../escape", "../../escape", "a/../../escape", "/" + filepath.Join(parent, "abs")} {
		if err := s.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, edge.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, p := range []string{"escape", "store/escape", "abs"} {
		if _, err := os.Lstat(filepath.Join(parent, p)); err == nil {
			t.Errorf("%s was created outside the store", p)
		}
	}
	if err := s.Put(ctx, ".tmp/x", strings.NewReader("x"), 1); !errors.Is(err, edge.ErrInvalidKey) {
		t.Errorf("Put into the reserved .tmp folder = %v, want ErrInvalidKey", err)
	}
}

func TestPath(t *testing.T) {
	s, err := dirblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	key := edge.BlobKey("ab12cd")
	if err := s.Put(ctx, key, strings.NewReader("blob"), 4); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     string
		want    string // file content; "" = an error
		wantErr error
	}{
		{"stored", key, "blob", nil},
		{"missing", edge.BlobKey("ffff"), "", edge.ErrNotExist},
		{"prefix", "blobs/sha256", "", edge.ErrNotExist},
		{"invalid", "../x", "", edge.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Path(tt.key)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Path(%q) = %q, %v; want error %v", tt.key, p, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(p, s.Dir()+string(filepath.Separator)) {
				t.Fatalf("Path(%q) = %q, not under %q", tt.key, p, s.Dir())
			}
			b, err := os.ReadFile(p)
			if err != nil || string(b) != tt.want {
				t.Fatalf("read %q = %q, %v; want %q", p, b, err, tt.want)
			}
		})
	}
}

// Failed and finished Puts leave no temporary files behind.
func TestNoTempLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, err := dirblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Put(ctx, "ok", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "short", strings.NewReader("abc"), 5); err == nil {
		t.Fatal("short Put: no error")
	}
	if err := s.Put(ctx, "long", strings.NewReader("abcdef"), 5); err == nil {
		t.Fatal("long Put: no error")
	}
	ents, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf(".tmp holds %d leftover files", len(ents))
	}
	fi, err := os.Stat(filepath.Join(dir, "ok"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("object mode = %v, want 0644", fi.Mode().Perm())
	}
}
