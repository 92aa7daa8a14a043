package localkeyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/secrets/secretstest"
)

var (
	_ deploy.Sealer            = (*Keyring)(nil)
	_ secretstest.Sealer       = (*Keyring)(nil)
	_ secretstest.Versioner    = (*Keyring)(nil)
	_ secretstest.MinVersioner = (*Keyring)(nil)
)

func open(t *testing.T, path string) *Keyring {
	t.Helper()
	k, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return k
}

func TestConformance(t *testing.T) {
	secretstest.Run(t, func(t *testing.T) secretstest.Sealer {
		return open(t, filepath.Join(t.TempDir(), "keyring"))
	})
}

func TestSealUnseal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "keyring")
	k := open(t, path)
	for _, p := range []string{path, path + ".lock"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", filepath.Base(p), got)
		}
	}
	secret := []byte("ghp_supersecrettoken")
	c1, err := k.Seal(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c1, "pier:v1:") || strings.Contains(c1, string(secret)) {
		t.Errorf("ciphertext %q: want prefix pier:v1: and no plaintext", c1)
	}

	// A reopened keyring (same file) opens old values: data survives restarts.
	got, err := open(t, path).Unseal(ctx, c1)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unseal = %q, %v; want %q", got, err, secret)
	}

	// Another key cannot open it.
	other := open(t, filepath.Join(t.TempDir(), "keyring"))
	if _, err := other.Unseal(ctx, c1); !errors.Is(err, ErrMalformed) {
		t.Errorf("another key: err = %v, want ErrMalformed", err)
	}
}

func TestUnsealRejects(t *testing.T) {
	k := open(t, filepath.Join(t.TempDir(), "keyring"))
	good, _ := k.Seal(context.Background(), []byte("x"))
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"plaintext", "hunter2"},
		{"vault format", "vault:v1:AAAA"},
		{"bad base64", "pier:v1:!!!"},
		{"short", "pier:v1:AAAA"},
		{"tampered", good[:len(good)-4] + "AAA="},
		{"unknown version", strings.Replace(good, ":v1:", ":v7:", 1)},
		{"version zero", strings.Replace(good, ":v1:", ":v0:", 1)},
		{"leading zero", strings.Replace(good, ":v1:", ":v01:", 1)},
		{"plus sign", strings.Replace(good, ":v1:", ":v+1:", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := k.Unseal(context.Background(), tt.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("Unseal(%q) err = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}

func TestBadKeyFile(t *testing.T) {
	key := strings.Repeat("ab", 32)
	tests := []struct{ name, content string }{
		{"short", "short"},
		{"bad json", "{"},
		{"no keys", `{"keys":[]}`},
		{"short key", `{"keys":[{"version":1,"key":"abcd"}]}`},
		{"version zero", `{"keys":[{"version":0,"key":"` + key + `"}]}`},
		{"duplicate", `{"keys":[{"version":1,"key":"` + key + `"},{"version":1,"key":"` + key + `"}]}`},
		{"min above latest", `{"keys":[{"version":1,"key":"` + key + `"}],"min_decryption_version":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keyring")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(path); err == nil {
				t.Fatal("Open accepted a malformed key file")
			} else if strings.Contains(err.Error(), key) {
				t.Errorf("error %q shows the key", err)
			}
		})
	}
}

// legacySeal is how the first release sealed: one key, "pier:v1:" as both
// prefix and additional data.
func legacySeal(t *testing.T, keyHex string, pt []byte) string {
	t.Helper()
	key, _ := hex.DecodeString(keyHex)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	nonce[0] = 7
	out := aead.Seal(nonce, nonce, pt, []byte("pier:v1:"))
	return "pier:v1:" + base64.StdEncoding.EncodeToString(out)
}

// TestLegacyKeyFile: a key file of the first format (64 hex characters) is
// version 1, old values open, and rotation converts it to JSON keeping the
// old key.
func TestLegacyKeyFile(t *testing.T) {
	ctx := context.Background()
	keyHex := strings.Repeat("0123456789abcdef", 4)
	path := filepath.Join(t.TempDir(), "keyring")
	if err := os.WriteFile(path, []byte(keyHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := legacySeal(t, keyHex, []byte("from the first release"))

	k := open(t, path)
	if v, err := k.KeyVersion(ctx); err != nil || v != 1 {
		t.Fatalf("KeyVersion = %d, %v; want 1", v, err)
	}
	got, err := k.Unseal(ctx, old)
	if err != nil || string(got) != "from the first release" {
		t.Fatalf("Unseal(legacy) = %q, %v", got, err)
	}
	if raw, _ := os.ReadFile(path); string(raw) != keyHex+"\n" {
		t.Errorf("Open rewrote the legacy file: %q", raw)
	}

	if err := k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f keyringFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("after Rotate the key file is not JSON: %v", err)
	}
	if len(f.Keys) != 2 || f.Keys[0].Version != 1 || f.Keys[0].Key != keyHex || f.Keys[1].Version != 2 {
		t.Errorf("key file after Rotate = %+v, want the old key as v1 and a new v2", f.Keys)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %o after Rotate, want 600", fi.Mode().Perm())
	}
	if got, err := open(t, path).Unseal(ctx, old); err != nil || string(got) != "from the first release" {
		t.Fatalf("reopened Unseal(legacy) = %q, %v", got, err)
	}
}

// TestSharedFile: two Keyrings on one file (two processes in real life)
// see each other's rotations instead of overwriting them.
func TestSharedFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring")
	a, b := open(t, path), open(t, path)

	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	c2, _ := a.Seal(ctx, []byte("two"))
	if got, err := b.Unseal(ctx, c2); err != nil || string(got) != "two" {
		t.Fatalf("b.Unseal(v2 from a) = %q, %v", got, err)
	}
	if err := b.Rotate(ctx); err != nil { // must build on a's v2
		t.Fatal(err)
	}
	c3, _ := b.Seal(ctx, []byte("three"))
	if !strings.HasPrefix(c3, "pier:v3:") {
		t.Fatalf("b sealed %q after rotating on top of a's rotation, want v3", c3)
	}
	if got, err := a.Unseal(ctx, c3); err != nil || string(got) != "three" {
		t.Fatalf("a.Unseal(v3 from b) = %q, %v", got, err)
	}
	if v, err := a.KeyVersion(ctx); err != nil || v != 3 {
		t.Errorf("a.KeyVersion = %d, %v; want 3", v, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keyring.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}
