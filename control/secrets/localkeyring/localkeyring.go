// Package localkeyring is the embedded secrets backend: AES-256-GCM with
// random 256-bit keys kept in a 0600 file in the data dir. It is the twin of
// control/secrets/vaulttransit for `pier dev`, and like `vault server -dev`
// it is meant for one machine: anyone who can read the key file can read
// every secret.
//
// The keyring is versioned like a Vault transit key. Ciphertexts look like
// Vault's: "pier:v<N>:<base64(nonce|sealed)>", N the key version, a fresh
// random 96-bit nonce per value, and "pier:v<N>:" as additional data so a
// value cannot be moved to another version. Rotate adds a version that new
// values are sealed with; older versions keep opening unless they fall below
// the minimum decryption version. Rewrap moves a value to the newest
// version.
//
// The key file is JSON (see keyringFile). A file holding just 64 hex
// characters, the format of the first releases, is read as a keyring whose
// only key is version 1; it is rewritten as JSON on its first rotation.
// Several processes may share one file: changes are made under an advisory
// lock (<file>.lock) and written by rename, and a process that meets a
// version it does not know rereads the file.
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
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrMalformed is returned, wrapped, for a ciphertext this keyring cannot
// open: not in its format, altered, sealed with another key, or sealed with
// a key version it does not hold or no longer accepts.
var ErrMalformed = errors.New("localkeyring: malformed ciphertext")

const keySize = 32 // AES-256

// keyringFile is the key file's JSON form.
type keyringFile struct {
	Keys []fileKey `json:"keys"`
	// MinDecryptionVersion is the oldest version Unseal accepts; 0 or 1: all.
	MinDecryptionVersion int `json:"min_decryption_version,omitempty"`
}

type fileKey struct {
	Version int       `json:"version"`
	Key     string    `json:"key"` // 64 hex characters
	Created time.Time `json:"created,omitzero"`
}

// state is one immutable snapshot of the keyring.
type state struct {
	aeads  map[int]cipher.AEAD
	latest int
	min    int
}

// Keyring seals and opens values with a versioned local key. It is safe for
// concurrent use.
type Keyring struct {
	path string
	mu   sync.Mutex // serialises changes and reloads in this process
	cur  atomic.Pointer[state]
}

// Open loads the keyring at path, creating it (0600, parent 0700) with one
// fresh key if missing.
func Open(path string) (*Keyring, error) {
	k := &Keyring{path: path}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open keyring %s: %w", path, err)
	}
	err := k.locked(func() error {
		f, err := readFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			f = &keyringFile{}
			if err = addKey(f); err == nil {
				err = writeFile(path, f)
			}
		}
		if err != nil {
			return err
		}
		return k.install(f)
	})
	if err != nil {
		return nil, fmt.Errorf("open keyring %s: %w", path, err)
	}
	return k, nil
}

// Seal encrypts plaintext with the newest key version. The context is
// unused; it is there to satisfy the same port as Vault transit.
func (k *Keyring) Seal(_ context.Context, plaintext []byte) (string, error) {
	s := k.cur.Load()
	return seal(s.aeads[s.latest], s.latest, plaintext)
}

func seal(aead cipher.AEAD, version int, plaintext []byte) (string, error) {
	prefix := prefixOf(version)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := aead.Seal(nonce, nonce, plaintext, []byte(prefix))
	return prefix + base64.StdEncoding.EncodeToString(out), nil
}

func prefixOf(version int) string { return "pier:v" + strconv.Itoa(version) + ":" }

// Unseal decrypts a value produced by Seal with any key version of this
// keyring at or above the minimum decryption version.
func (k *Keyring) Unseal(_ context.Context, ciphertext string) ([]byte, error) {
	version, raw, err := parse(ciphertext)
	if err != nil {
		return nil, err
	}
	s := k.cur.Load()
	if _, ok := s.aeads[version]; !ok && version > s.latest {
		// Another process may have rotated the shared key file.
		if s, err = k.reload(); err != nil {
			return nil, fmt.Errorf("unseal: %w", err)
		}
	}
	aead, ok := s.aeads[version]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: key version %d is not in the keyring", ErrMalformed, version)
	case version < s.min:
		return nil, fmt.Errorf("%w: key version %d is below the minimum decryption version %d", ErrMalformed, version, s.min)
	}
	n := aead.NonceSize()
	if len(raw) < n+aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	pt, err := aead.Open(nil, raw[:n], raw[n:], []byte(prefixOf(version)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return pt, nil
}

// parse splits "pier:v<N>:<base64>" into N and the decoded bytes.
func parse(ciphertext string) (int, []byte, error) {
	rest, ok := strings.CutPrefix(ciphertext, "pier:v")
	if !ok {
		return 0, nil, ErrMalformed
	}
	digits, payload, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, nil, ErrMalformed
	}
	version, err := strconv.Atoi(digits)
	if err != nil || version < 1 || strconv.Itoa(version) != digits {
		return 0, nil, fmt.Errorf("%w: bad key version", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: bad base64", ErrMalformed)
	}
	return version, raw, nil
}

// Rewrap re-encrypts ciphertext with the newest key version. The plaintext
// never leaves the process.
func (k *Keyring) Rewrap(ctx context.Context, ciphertext string) (string, error) {
	pt, err := k.Unseal(ctx, ciphertext)
	if err != nil {
		return "", fmt.Errorf("rewrap: %w", err)
	}
	defer clear(pt)
	return k.Seal(ctx, pt)
}

// Rotate adds a new key version; later Seals use it.
func (k *Keyring) Rotate(_ context.Context) error {
	err := k.update(func(f *keyringFile) error { return addKey(f) })
	if err != nil {
		return fmt.Errorf("rotate keyring %s: %w", k.path, err)
	}
	return nil
}

// SetMinDecryptionVersion makes Unseal and Rewrap refuse values sealed
// with a version older than v (1: accept all). The older keys stay in the
// file, so lowering it again restores access.
func (k *Keyring) SetMinDecryptionVersion(_ context.Context, v int) error {
	err := k.update(func(f *keyringFile) error {
		latest := latestOf(f)
		if v < 1 || v > latest {
			return fmt.Errorf("minimum decryption version %d is not between 1 and the latest version %d", v, latest)
		}
		f.MinDecryptionVersion = v
		return nil
	})
	if err != nil {
		return fmt.Errorf("set minimum decryption version: %w", err)
	}
	return nil
}

// KeyVersion returns the newest key version, rereading the file so a
// rotation by another process counts.
func (k *Keyring) KeyVersion(_ context.Context) (int, error) {
	s, err := k.reload()
	if err != nil {
		return 0, fmt.Errorf("key version: %w", err)
	}
	return s.latest, nil
}

// update applies change to the file's current content and writes it back,
// under the lock.
func (k *Keyring) update(change func(*keyringFile) error) error {
	return k.locked(func() error {
		f, err := readFile(k.path)
		if err != nil {
			return err
		}
		if err := change(f); err != nil {
			return err
		}
		if err := writeFile(k.path, f); err != nil {
			return err
		}
		return k.install(f)
	})
}

func (k *Keyring) reload() (*state, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, err := readFile(k.path)
	if err != nil {
		return nil, err
	}
	if err := k.install(f); err != nil {
		return nil, err
	}
	return k.cur.Load(), nil
}

// locked runs fn holding the in-process mutex and the file lock.
func (k *Keyring) locked(fn func() error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	unlock, err := lockFile(k.path + ".lock")
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer unlock()
	return fn()
}

// install builds the ciphers for f and makes them current.
func (k *Keyring) install(f *keyringFile) error {
	s := &state{aeads: make(map[int]cipher.AEAD, len(f.Keys)), min: f.MinDecryptionVersion}
	for _, fk := range f.Keys {
		if fk.Version < 1 {
			return fmt.Errorf("key file: bad key version %d", fk.Version)
		}
		if _, dup := s.aeads[fk.Version]; dup {
			return fmt.Errorf("key file: key version %d appears twice", fk.Version)
		}
		key, err := hex.DecodeString(fk.Key)
		if err != nil || len(key) != keySize {
			return fmt.Errorf("key file: key version %d is not 64 hex characters", fk.Version)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return err
		}
		s.aeads[fk.Version] = aead
		s.latest = max(s.latest, fk.Version)
	}
	if s.latest == 0 {
		return errors.New("key file: no keys")
	}
	if s.min > s.latest {
		return fmt.Errorf("key file: minimum decryption version %d is above the latest version %d", s.min, s.latest)
	}
	k.cur.Store(s)
	return nil
}

func latestOf(f *keyringFile) int {
	latest := 0
	for _, fk := range f.Keys {
		latest = max(latest, fk.Version)
	}
	return latest
}

// addKey appends a fresh random key as the next version.
func addKey(f *keyringFile) error {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	f.Keys = append(f.Keys, fileKey{
		Version: latestOf(f) + 1,
		Key:     hex.EncodeToString(key),
		Created: time.Now().UTC().Truncate(time.Second),
	})
	return nil
}

// readFile reads the key file in either format.
func readFile(path string) (*keyringFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(text, "{") {
		// The first format: one key, 64 hex characters: version 1.
		if key, err := hex.DecodeString(text); err != nil || len(key) != keySize {
			return nil, errors.New("key file is neither 64 hex characters nor a JSON keyring")
		}
		return &keyringFile{Keys: []fileKey{{Version: 1, Key: text}}}, nil
	}
	var f keyringFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("key file is not a valid JSON keyring: %w", err)
	}
	return &f, nil
}

// writeFile replaces the key file atomically: a 0600 temporary file in the
// same directory, synced, then renamed over it.
func writeFile(path string, f *keyringFile) error {
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: make the rename durable
		d.Close()
	}
	return nil
}
