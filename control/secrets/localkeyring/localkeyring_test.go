package localkeyring

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealUnseal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "keyring")
	k, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %o, want 600", got)
	}
	secret := []byte("ghp_supersecrettoken")
	c1, err := k.Seal(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := k.Seal(ctx, secret)
	if c1 == c2 {
		t.Error("two seals of one value are equal: nonce reused")
	}
	if !strings.HasPrefix(c1, prefix) || strings.Contains(c1, string(secret)) {
		t.Errorf("ciphertext %q: want prefix %q and no plaintext", c1, prefix)
	}

	// A reopened keyring (same file) opens old values: data survives restarts.
	k2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k2.Unseal(ctx, c1)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unseal = %q, %v; want %q", got, err, secret)
	}

	// Another key cannot open it.
	other, _ := Open(filepath.Join(t.TempDir(), "keyring"))
	if _, err := other.Unseal(ctx, c1); err == nil {
		t.Error("a different key opened the value")
	}
}

func TestUnsealRejects(t *testing.T) {
	k, err := Open(filepath.Join(t.TempDir(), "keyring"))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := k.Seal(context.Background(), []byte("x"))
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"plaintext", "hunter2"},
		{"vault format", "vault:v1:AAAA"},
		{"bad base64", prefix + "!!!"},
		{"short", prefix + "AAAA"},
		{"tampered", good[:len(good)-4] + "AAA="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := k.Unseal(context.Background(), tt.in); err == nil {
				t.Errorf("Unseal(%q) succeeded", tt.in)
			}
		})
	}
	if _, err := k.Unseal(context.Background(), "nope"); !errors.Is(err, ErrMalformed) {
		t.Errorf("err = %v, want ErrMalformed", err)
	}
}

func TestBadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring")
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := Open(path); err == nil {
		t.Fatal("Open accepted a malformed key file")
	}
}
