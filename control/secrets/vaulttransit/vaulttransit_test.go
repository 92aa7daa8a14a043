package vaulttransit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/secrets/secretstest"
	"github.com/pierhq/pier/control/secrets/vaulttransit"
	"github.com/pierhq/pier/tests/testenv"
)

var (
	_ deploy.Sealer            = (*vaulttransit.Transit)(nil)
	_ secretstest.Sealer       = (*vaulttransit.Transit)(nil)
	_ secretstest.Versioner    = (*vaulttransit.Transit)(nil)
	_ secretstest.MinVersioner = (*vaulttransit.Transit)(nil)
)

func TestMain(m *testing.M) { testenv.Main(m) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// root is a Vault client with the server's root token, for set-up.
func root(t *testing.T, v testenv.VaultServer) *api.Client {
	t.Helper()
	return client(t, v.Addr, v.Token)
}

func client(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// uniqueName returns a name no other test (or test run, on a shared
// server) uses.
func uniqueName(t *testing.T, prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	name := strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
	return prefix + name + "-" + hex.EncodeToString(b)
}

// newKey creates a transit key for t on the shared mount, deleted when t
// ends.
func newKey(t *testing.T, v testenv.VaultServer) (*vaulttransit.Transit, string) {
	t.Helper()
	key := uniqueName(t, "t-")
	tr, err := vaulttransit.New(t.Context(), vaulttransit.Config{
		Address: v.Addr, Token: v.Token, Mount: v.Transit, Key: key, CreateKey: true, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { deleteKey(t, v, v.Transit, key) })
	return tr, key
}

func deleteKey(t *testing.T, v testenv.VaultServer, mount, key string) {
	c := root(t, v)
	ctx := context.Background()
	if _, err := c.Logical().WriteWithContext(ctx, mount+"/keys/"+key+"/config", map[string]any{"deletion_allowed": true}); err != nil {
		t.Errorf("allow deletion of %s: %v", key, err)
		return
	}
	if _, err := c.Logical().DeleteWithContext(ctx, mount+"/keys/"+key); err != nil {
		t.Errorf("delete %s: %v", key, err)
	}
}

func TestConformance(t *testing.T) {
	v := testenv.Vault(t)
	secretstest.Run(t, func(t *testing.T) secretstest.Sealer {
		tr, _ := newKey(t, v)
		return tr
	})
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  vaulttransit.Config
	}{
		{"no address", vaulttransit.Config{Token: "t"}},
		{"no token", vaulttransit.Config{Address: "http://127.0.0.1:1"}},
		{"bad key", vaulttransit.Config{Address: "http://127.0.0.1:1", Token: "t", Key: "a/b"}},
		{"bad mount", vaulttransit.Config{Address: "http://127.0.0.1:1", Token: "t", Mount: "../sys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := vaulttransit.New(t.Context(), tt.cfg); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
	// Without CreateKey, New does no I/O: a closed port is fine until used.
	tr, err := vaulttransit.New(t.Context(), vaulttransit.Config{Address: "http://127.0.0.1:1", Token: "t"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := tr.Seal(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Seal with a cancelled context: err = %v, want context.Canceled", err)
	}
}

// TestErrors: Vault's answers become this package's errors, and the
// messages carry neither plaintext nor ciphertext.
func TestErrors(t *testing.T) {
	v := testenv.Vault(t)
	ctx := t.Context()
	good, _ := newKey(t, v)
	sealed, err := good.Seal(ctx, []byte("s3cr3t-value"))
	if err != nil {
		t.Fatal(err)
	}
	payload := sealed[strings.LastIndexByte(sealed, ':')+1:]

	at := func(mount, key, token string) *vaulttransit.Transit {
		tr, err := vaulttransit.New(ctx, vaulttransit.Config{Address: v.Addr, Token: token, Mount: mount, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	missingKey := at(v.Transit, uniqueName(t, "missing-"), v.Token)
	noMount := at(uniqueName(t, "nomount-"), "pier", v.Token)
	badToken := at(v.Transit, "pier", "not-a-token")

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"unseal, missing key", func() error { _, err := missingKey.Unseal(ctx, sealed); return err }, vaulttransit.ErrKeyNotFound},
		{"rewrap, missing key", func() error { _, err := missingKey.Rewrap(ctx, sealed); return err }, vaulttransit.ErrKeyNotFound},
		{"rotate, missing key", func() error { return missingKey.Rotate(ctx) }, vaulttransit.ErrKeyNotFound},
		{"key version, missing key", func() error { _, err := missingKey.KeyVersion(ctx); return err }, vaulttransit.ErrKeyNotFound},
		{"seal, no mount", func() error { _, err := noMount.Seal(ctx, []byte("x")); return err }, vaulttransit.ErrKeyNotFound},
		{"seal, bad token", func() error { _, err := badToken.Seal(ctx, []byte("x")); return err }, vaulttransit.ErrPermissionDenied},
		{"unseal, bad token", func() error { _, err := badToken.Unseal(ctx, sealed); return err }, vaulttransit.ErrPermissionDenied},
		{"unseal, not vault", func() error { _, err := good.Unseal(ctx, "pier:v1:"+payload); return err }, vaulttransit.ErrMalformed},
		{"unseal, altered", func() error { _, err := good.Unseal(ctx, "vault:v1:AAAA"+payload[4:]); return err }, vaulttransit.ErrMalformed},
		{"unseal, future version", func() error { _, err := good.Unseal(ctx, "vault:v9:"+payload); return err }, vaulttransit.ErrMalformed},
		{"rewrap, altered", func() error { _, err := good.Rewrap(ctx, "vault:v1:AAAA"+payload[4:]); return err }, vaulttransit.ErrMalformed},
		{"min version too high", func() error { return good.SetMinDecryptionVersion(ctx, 5) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if msg := err.Error(); strings.Contains(msg, payload[4:]) || strings.Contains(msg, "s3cr3t") {
				t.Errorf("error %q carries the secret", msg)
			}
			t.Log(err)
		})
	}
}

// TestCreateKeyChecksType: CreateKey refuses an existing key that cannot
// encrypt, and is a no-op on one that can.
func TestCreateKeyChecksType(t *testing.T) {
	v := testenv.Vault(t)
	c := root(t, v)
	key := uniqueName(t, "ed-")
	if _, err := c.Logical().WriteWithContext(t.Context(), v.Transit+"/keys/"+key, map[string]any{"type": "ed25519"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteKey(t, v, v.Transit, key) })
	_, err := vaulttransit.New(t.Context(), vaulttransit.Config{Address: v.Addr, Token: v.Token, Mount: v.Transit, Key: key, CreateKey: true})
	if err == nil || !strings.Contains(err.Error(), "cannot encrypt") {
		t.Errorf("New(CreateKey) on an ed25519 key: err = %v, want 'cannot encrypt'", err)
	}

	tr, created := newKey(t, v)
	c1, err := tr.Seal(t.Context(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c1, "vault:v1:") {
		t.Errorf("ciphertext %q, want vault:v1:", c1)
	}
	secret, err := c.Logical().ReadWithContext(t.Context(), v.Transit+"/keys/"+created)
	if err != nil {
		t.Fatal(err)
	}
	if got := secret.Data["type"]; got != vaulttransit.KeyType {
		t.Errorf("created key type = %v, want %s", got, vaulttransit.KeyType)
	}
}

// TestPolicies: tokens holding only the policies in vault/ can do what
// their comments say and nothing more. The policies are loaded from the
// repository's files, pointed at a mount of this test's own.
func TestPolicies(t *testing.T) {
	v := testenv.Vault(t)
	ctx := t.Context()
	c := root(t, v)

	mount := uniqueName(t, "pol-")
	if err := c.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("mount transit: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Sys().UnmountWithContext(context.Background(), mount); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	setup, err := vaulttransit.New(ctx, vaulttransit.Config{Address: v.Addr, Token: v.Token, Mount: mount, Key: "pier", CreateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := setup.Seal(ctx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}

	token := func(role string) string {
		raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "vault", "pier-"+role+".hcl"))
		if err != nil {
			t.Fatal(err)
		}
		rules := strings.ReplaceAll(string(raw), `"transit/`, `"`+mount+`/`)
		if rules == string(raw) {
			t.Fatalf("pier-%s.hcl has no transit/ paths", role)
		}
		name := mount + "-" + role
		if err := c.Sys().PutPolicyWithContext(ctx, name, rules); err != nil {
			t.Fatalf("write policy %s: %v", name, err)
		}
		t.Cleanup(func() { c.Sys().DeletePolicyWithContext(context.Background(), name) })
		s, err := c.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{name}, TTL: "10m"})
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		t.Cleanup(func() { c.Auth().Token().RevokeTreeWithContext(context.Background(), s.Auth.ClientToken) })
		return s.Auth.ClientToken
	}

	// Operations, by name, run with a token.
	adapter := func(tok string) *vaulttransit.Transit {
		tr, err := vaulttransit.New(ctx, vaulttransit.Config{Address: v.Addr, Token: tok, Mount: mount, Key: "pier", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	raw := func(tok, method, path string, body map[string]any) error {
		r := client(t, v.Addr, tok).NewRequest(method, "/v1/"+mount+"/"+path)
		if body != nil {
			if err := r.SetJSONBody(body); err != nil {
				return err
			}
		}
		resp, err := client(t, v.Addr, tok).RawRequestWithContext(ctx, r)
		if resp != nil {
			resp.Body.Close()
		}
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			return vaulttransit.ErrPermissionDenied
		}
		return err
	}
	ops := map[string]func(tok string) error{
		"seal":    func(tok string) error { _, err := adapter(tok).Seal(ctx, []byte("x")); return err },
		"unseal":  func(tok string) error { _, err := adapter(tok).Unseal(ctx, sealed); return err },
		"rewrap":  func(tok string) error { _, err := adapter(tok).Rewrap(ctx, sealed); return err },
		"rotate":  func(tok string) error { return adapter(tok).Rotate(ctx) },
		"version": func(tok string) error { _, err := adapter(tok).KeyVersion(ctx); return err },
		"min 1":   func(tok string) error { return adapter(tok).SetMinDecryptionVersion(ctx, 1) },
		"create": func(tok string) error {
			_, err := vaulttransit.New(ctx, vaulttransit.Config{Address: v.Addr, Token: tok, Mount: mount, Key: "pier", CreateKey: true})
			return err
		},
		"other key": func(tok string) error { return raw(tok, "POST", "encrypt/other", map[string]any{"plaintext": ""}) },
		"export":    func(tok string) error { return raw(tok, "GET", "export/encryption-key/pier", nil) },
		"backup":    func(tok string) error { return raw(tok, "GET", "backup/pier", nil) },
		"trim": func(tok string) error {
			return raw(tok, "POST", "keys/pier/trim", map[string]any{"min_available_version": 1})
		},
		"deletable": func(tok string) error {
			return raw(tok, "POST", "keys/pier/config", map[string]any{"deletion_allowed": true})
		},
		"exportable": func(tok string) error {
			return raw(tok, "POST", "keys/pier/config", map[string]any{"exportable": true})
		},
		"create exportable": func(tok string) error {
			return raw(tok, "POST", "keys/pier", map[string]any{"type": "aes256-gcm96", "exportable": true})
		},
		"delete": func(tok string) error { return raw(tok, "DELETE", "keys/pier", nil) },
	}
	// What each role may do; everything else must be denied.
	allowed := map[string][]string{
		"control": {"seal", "unseal", "rewrap"},
		"edge":    {"unseal"},
		"ops":     {"rotate", "version", "min 1", "create"},
	}
	for _, role := range []string{"control", "edge", "ops"} {
		t.Run(role, func(t *testing.T) {
			tok := token(role)
			for name, op := range ops {
				want := false
				for _, a := range allowed[role] {
					want = want || a == name
				}
				err := op(tok)
				switch {
				case want && err != nil:
					t.Errorf("%s: %v, want allowed", name, err)
				case !want && !errors.Is(err, vaulttransit.ErrPermissionDenied):
					t.Errorf("%s: err = %v, want permission denied", name, err)
				}
			}
		})
	}
	// The key survived every attempt.
	if _, err := setup.Unseal(ctx, sealed); err != nil {
		t.Errorf("Unseal after the policy checks: %v", err)
	}
}
