// Package localkeyring is the embedded secrets backend: AES-256-GCM with a
// random 256-bit key kept in a 0600 file in the data dir. It is the twin of
// control/secrets/vaulttransit for `pier dev`, and like `vault server -dev`
// it is meant for one machine: anyone who can read the key file can read
// every secret.
//
// Ciphertexts look like Vault transit's: "pier:v1:<base64(nonce|sealed)>",
// a fresh random 96-bit nonce per value.
//
// Imports: the standard library only. Reached by consumers through main.
package localkeyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const prefix = "pier:v1:"

// ErrMalformed is returned for a ciphertext this keyring did not produce.
var ErrMalformed = errors.New("localkeyring: malformed ciphertext")

// Keyring seals and opens values with one local key.
type Keyring struct {
	aead cipher.AEAD
}

// Open loads the key at path, creating it (0600, parent 0700) if missing.
func Open(path string) (*Keyring, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw, err = create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open keyring %s: %w", path, err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("open keyring %s: key file is not 64 hex characters", path)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("open keyring: %w", err)
	}
	return &Keyring{aead: aead}, nil
}

func create(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	enc := []byte(hex.EncodeToString(key) + "\n")
	// O_EXCL: if another process created it first, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(enc); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return enc, f.Close()
}

// Seal encrypts plaintext. The context is unused; it is there to satisfy
// the same port as Vault transit.
func (k *Keyring) Seal(_ context.Context, plaintext []byte) (string, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := k.aead.Seal(nonce, nonce, plaintext, []byte(prefix))
	return prefix + base64.StdEncoding.EncodeToString(out), nil
}

// Unseal decrypts a value produced by Seal with the same key.
func (k *Keyring) Unseal(_ context.Context, ciphertext string) ([]byte, error) {
	rest, ok := strings.CutPrefix(ciphertext, prefix)
	if !ok {
		return nil, ErrMalformed
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, ErrMalformed
	}
	n := k.aead.NonceSize()
	pt, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(prefix))
	if err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	return pt, nil
}
