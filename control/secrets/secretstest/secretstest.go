// Package secretstest is the conformance suite of the secrets port: every
// backend (control/secrets/localkeyring, control/secrets/vaulttransit) runs
// Run from its tests, so the embedded twin and Vault transit are known to
// behave alike: values round-trip, ciphertexts are fresh, versioned and
// opaque, bad input is refused with an error, and key rotation and rewrap
// keep old values readable while moving them forward.
//
// Ciphertexts are expected in the Vault transit shape
// "<name>:v<N>:<payload>", N the key version.
//
// Imports: the standard library only. Imported by the backends' tests.
package secretstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Sealer is the secrets port with the key management the suite exercises.
type Sealer interface {
	// Seal encrypts plaintext with the newest key version.
	Seal(ctx context.Context, plaintext []byte) (string, error)
	// Unseal decrypts a value sealed with any accepted key version.
	Unseal(ctx context.Context, ciphertext string) ([]byte, error)
	// Rotate adds a key version; later seals use it.
	Rotate(ctx context.Context) error
	// Rewrap re-encrypts a value with the newest key version without
	// handing out its plaintext.
	Rewrap(ctx context.Context, ciphertext string) (string, error)
}

// Versioner is implemented by backends that report their newest key
// version; the suite checks it when present.
type Versioner interface {
	KeyVersion(ctx context.Context) (int, error)
}

// MinVersioner is implemented by backends that can refuse old key
// versions; the suite checks it when present.
type MinVersioner interface {
	SetMinDecryptionVersion(ctx context.Context, version int) error
}

// Run runs the suite. open must return a Sealer over a fresh key (its
// first version, never rotated), independent of every other one open
// returned, and arrange its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) Sealer) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("FreshCiphertexts", func(t *testing.T) { testFresh(t, open(t)) })
	t.Run("Opaque", func(t *testing.T) { testOpaque(t, open(t)) })
	t.Run("Tampered", func(t *testing.T) { testTampered(t, open(t)) })
	t.Run("Garbage", func(t *testing.T) { testGarbage(t, open(t)) })
	t.Run("OtherKey", func(t *testing.T) { testOtherKey(t, open(t), open(t)) })
	t.Run("Rotate", func(t *testing.T) { testRotate(t, open(t)) })
	t.Run("Rewrap", func(t *testing.T) { testRewrap(t, open(t)) })
	t.Run("MinDecryptionVersion", func(t *testing.T) { testMinVersion(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open(t)) })
}

// Version returns the key version of a "<name>:v<N>:<payload>" ciphertext.
func Version(ciphertext string) (int, error) {
	parts := strings.SplitN(ciphertext, ":", 3)
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "v") {
		return 0, fmt.Errorf("ciphertext %.24q... is not <name>:v<N>:<payload>", ciphertext)
	}
	n, err := strconv.Atoi(parts[1][1:])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("ciphertext %.24q... has a bad version", ciphertext)
	}
	return n, nil
}

func random(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSeal(t testing.TB, s Sealer, pt []byte) string {
	t.Helper()
	c, err := s.Seal(t.Context(), pt)
	if err != nil {
		t.Fatalf("Seal(%d bytes): %v", len(pt), err)
	}
	return c
}

func mustOpen(t testing.TB, s Sealer, c string, want []byte) {
	t.Helper()
	got, err := s.Unseal(t.Context(), c)
	if err != nil {
		t.Fatalf("Unseal(%.32q...): %v", c, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Unseal = %d bytes %.32q..., want %d bytes %.32q...", len(got), got, len(want), want)
	}
}

func mustVersion(t testing.TB, c string) int {
	t.Helper()
	v, err := Version(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testRoundTrip(t *testing.T, s Sealer) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	tests := []struct {
		name string
		pt   []byte
	}{
		{"empty", []byte{}},
		{"nil", nil},
		{"text", []byte("postgres://app:hunter2@db:5432/app")},
		{"utf8", []byte("clé secrète ✓ 秘密")},
		{"every byte", all},
		{"zeros", make([]byte, 100)},
		{"64KiB random", random(t, 64<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustSeal(t, s, tt.pt)
			mustOpen(t, s, c, tt.pt)
		})
	}
}

func testFresh(t *testing.T, s Sealer) {
	seen := map[string]bool{}
	pt := []byte("the same value every time")
	for range 20 {
		c := mustSeal(t, s, pt)
		if seen[c] {
			t.Fatalf("two seals of one value gave %q: nonce reused", c)
		}
		seen[c] = true
	}
	if c := mustSeal(t, s, pt); mustVersion(t, c) != 1 {
		t.Errorf("a fresh key sealed %q: want version 1", c)
	}
}

func testOpaque(t *testing.T, s Sealer) {
	secret := []byte("ghp_S3cr3tT0k3nTh4tMustN3v3rL34k")
	c := mustSeal(t, s, secret)
	forms := map[string]string{
		"plaintext":        string(secret),
		"base64":           base64.StdEncoding.EncodeToString(secret),
		"base64 (no tail)": base64.RawStdEncoding.EncodeToString(secret)[:40],
		"base64url":        base64.RawURLEncoding.EncodeToString(secret)[:40],
		"hex":              hex.EncodeToString(secret),
		"fragment":         string(secret[4:20]),
	}
	for name, f := range forms {
		if strings.Contains(c, f) {
			t.Errorf("ciphertext %q contains the %s form of the plaintext", c, name)
		}
	}
	for _, r := range c {
		if r <= ' ' || r > '~' {
			t.Fatalf("ciphertext %q has %q: want printable ASCII without spaces", c, r)
		}
	}
}

// flip returns c with one bit of its decoded payload changed.
func flip(t *testing.T, c string, at func(n int) int) string {
	t.Helper()
	i := strings.LastIndexByte(c, ':')
	raw, err := base64.StdEncoding.DecodeString(c[i+1:])
	if err != nil {
		t.Fatalf("payload of %q is not standard base64: %v", c, err)
	}
	raw[at(len(raw))] ^= 0x01
	return c[:i+1] + base64.StdEncoding.EncodeToString(raw)
}

func testTampered(t *testing.T, s Sealer) {
	pt := []byte("do not touch")
	c := mustSeal(t, s, pt)
	i := strings.LastIndexByte(c, ':')
	tests := []struct{ name, in string }{
		{"first byte", flip(t, c, func(int) int { return 0 })},
		{"middle byte", flip(t, c, func(n int) int { return n / 2 })},
		{"last byte", flip(t, c, func(n int) int { return n - 1 })},
		{"truncated payload", c[:i+1] + base64.StdEncoding.EncodeToString(mustDecode(t, c[i+1:])[:12])},
		{"empty payload", c[:i+1]},
		{"version bumped", strings.Replace(c, ":v1:", ":v2:", 1)},
		{"extra data", c[:i+1] + base64.StdEncoding.EncodeToString(append(mustDecode(t, c[i+1:]), 0))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := s.Unseal(t.Context(), tt.in); err == nil {
				t.Errorf("Unseal(%q) = %q, want an error", tt.in, got)
			}
			if _, err := s.Rewrap(t.Context(), tt.in); err == nil {
				t.Errorf("Rewrap(%q) succeeded, want an error", tt.in)
			}
		})
	}
	mustOpen(t, s, c, pt) // the original still opens
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func testGarbage(t *testing.T, s Sealer) {
	c := mustSeal(t, s, []byte("x"))
	name, rest, _ := strings.Cut(c, ":")
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"plaintext", "hunter2"},
		{"colons", "::"},
		{"prefix only", name + ":v1:"},
		{"no version", name + "::" + rest},
		{"bad version", name + ":vX:AAAA"},
		{"negative version", name + ":v-1:AAAA"},
		{"huge version", name + ":v99999999999999999999999:AAAA"},
		{"bad base64", name + ":v1:!!!!****"},
		{"short", name + ":v1:AAAA"},
		{"other backend", "other:" + rest},
		{"foreign vault", "vault:v1:" + base64.StdEncoding.EncodeToString(random(t, 40))},
		{"foreign pier", "pier:v1:" + base64.StdEncoding.EncodeToString(random(t, 40))},
		{"whitespace", " " + c},
		{"binary", string(random(t, 64))},
		{"1MiB", name + ":v1:" + strings.Repeat("A", 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := s.Unseal(t.Context(), tt.in); err == nil {
				t.Errorf("Unseal(%.40q) = %q, want an error", tt.in, got)
			}
			if _, err := s.Rewrap(t.Context(), tt.in); err == nil {
				t.Errorf("Rewrap(%.40q) succeeded, want an error", tt.in)
			}
		})
	}
}

func testOtherKey(t *testing.T, s, other Sealer) {
	c := mustSeal(t, s, []byte("mine"))
	if got, err := other.Unseal(t.Context(), c); err == nil {
		t.Errorf("another key opened %q as %q", c, got)
	}
}

func testRotate(t *testing.T, s Sealer) {
	ctx := t.Context()
	versioner, _ := s.(Versioner)
	checkVersion := func(want int) {
		t.Helper()
		if versioner == nil {
			return
		}
		got, err := versioner.KeyVersion(ctx)
		if err != nil || got != want {
			t.Errorf("KeyVersion = %d, %v; want %d", got, err, want)
		}
	}
	checkVersion(1)
	var sealed []string
	var plain [][]byte
	for v := 1; v <= 3; v++ {
		pt := []byte("value sealed with version " + strconv.Itoa(v))
		c := mustSeal(t, s, pt)
		if got := mustVersion(t, c); got != v {
			t.Fatalf("after %d rotations Seal gave %q: version %d, want %d", v-1, c, got, v)
		}
		sealed, plain = append(sealed, c), append(plain, pt)
		if err := s.Rotate(ctx); err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		checkVersion(v + 1)
	}
	for i, c := range sealed {
		mustOpen(t, s, c, plain[i]) // every old version still opens
	}
	if c := mustSeal(t, s, []byte("new")); mustVersion(t, c) != 4 {
		t.Errorf("Seal after 3 rotations gave %q, want version 4", c)
	}
}

func testRewrap(t *testing.T, s Sealer) {
	ctx := t.Context()
	pt := random(t, 300)
	c1 := mustSeal(t, s, pt)
	for range 2 {
		if err := s.Rotate(ctx); err != nil {
			t.Fatalf("Rotate: %v", err)
		}
	}
	r, err := s.Rewrap(ctx, c1)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if got := mustVersion(t, r); got != 3 {
		t.Errorf("Rewrap gave %q: version %d, want 3", r, got)
	}
	if r == c1 {
		t.Error("Rewrap returned its input")
	}
	mustOpen(t, s, r, pt)
	mustOpen(t, s, c1, pt) // the old one still opens too

	// Rewrapping a value already at the newest version keeps it there.
	r2, err := s.Rewrap(ctx, r)
	if err != nil {
		t.Fatalf("Rewrap(newest): %v", err)
	}
	if got := mustVersion(t, r2); got != 3 {
		t.Errorf("Rewrap(newest) gave version %d, want 3", got)
	}
	mustOpen(t, s, r2, pt)
}

func testMinVersion(t *testing.T, s Sealer) {
	mv, ok := s.(MinVersioner)
	if !ok {
		t.Skip("backend has no minimum decryption version")
	}
	ctx := t.Context()
	pt := []byte("old value")
	old := mustSeal(t, s, pt)
	if err := s.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	rewrapped, err := s.Rewrap(ctx, old)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if err := mv.SetMinDecryptionVersion(ctx, 2); err != nil {
		t.Fatalf("SetMinDecryptionVersion(2): %v", err)
	}
	if got, err := s.Unseal(ctx, old); err == nil {
		t.Errorf("Unseal of a version-1 value with minimum 2 = %q, want an error", got)
	}
	if _, err := s.Rewrap(ctx, old); err == nil {
		t.Error("Rewrap of a version-1 value with minimum 2 succeeded")
	}
	mustOpen(t, s, rewrapped, pt)
	mustOpen(t, s, mustSeal(t, s, pt), pt)
	if err := mv.SetMinDecryptionVersion(ctx, 3); err == nil {
		t.Error("SetMinDecryptionVersion above the latest version succeeded")
	}

	// Lowering it again restores access: the old key was kept.
	if err := mv.SetMinDecryptionVersion(ctx, 1); err != nil {
		t.Fatalf("SetMinDecryptionVersion(1): %v", err)
	}
	mustOpen(t, s, old, pt)
}

func testConcurrent(t *testing.T, s Sealer) {
	ctx := t.Context()
	const workers, rounds = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds+1)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				pt := []byte(fmt.Sprintf("worker %d round %d", w, r))
				c, err := s.Seal(ctx, pt)
				if err != nil {
					errs <- fmt.Errorf("Seal: %w", err)
					return
				}
				got, err := s.Unseal(ctx, c)
				if err != nil {
					errs <- fmt.Errorf("Unseal: %w", err)
					return
				}
				if !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("Unseal = %q, want %q", got, pt)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if err := s.Rotate(ctx); err != nil {
			errs <- fmt.Errorf("Rotate: %w", err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
