// Package vaulttransit is the production secrets backend: values are
// encrypted by HashiCorp Vault's transit engine with a named aes256-gcm96
// key, so the key never leaves Vault and the database holds only Vault's
// own "vault:v<N>:..." ciphertexts, stored as they come. Its twin for
// `pier dev` is control/secrets/localkeyring; both pass
// control/secrets/secretstest.
//
// Vault policies (the files live in vault/ at the repository root; the
// paths below are for the default mount "transit" and key "pier"):
//
//   - pier-control.hcl, the control plane's token, least privilege:
//     "update" on transit/encrypt/pier, transit/decrypt/pier and
//     transit/rewrap/pier, nothing else: it cannot create, read, rotate,
//     configure, export, back up, trim or delete the key. (Without
//     "create", encrypt cannot silently create a missing key either: it is
//     refused as permission denied.) Enough for Seal, Unseal and Rewrap.
//   - pier-edge.hcl, for processes that only read secrets: "update" on
//     transit/decrypt/pier. Enough for Unseal.
//   - pier-ops.hcl, for operators and the key set-up: "read" and "update"
//     on transit/keys/pier (read metadata, create), "update" on
//     transit/keys/pier/rotate and transit/keys/pier/config. Enough for
//     CreateKey, Rotate, KeyVersion and SetMinDecryptionVersion. Export,
//     backup, trim and delete are left out on purpose.
//
// Vault errors are translated at this boundary: HTTP 403 becomes
// ErrPermissionDenied, a missing key or mount ErrKeyNotFound, and a
// ciphertext Vault refuses to decrypt ErrMalformed. Messages never carry
// plaintext or ciphertext. The token is used as given; renewing it is the
// job of whoever issues it (Vault agent, Nomad workload identity).
//
// Imports: github.com/hashicorp/vault/api (this is its only home). Reached
// by consumers through main.
package vaulttransit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/api"
)

// Errors callers may branch on. Returned errors wrap them.
var (
	// ErrPermissionDenied: the token's policies do not allow the operation
	// (or, for encrypt, the key does not exist and may not be created).
	ErrPermissionDenied = errors.New("vaulttransit: permission denied")
	// ErrKeyNotFound: no such key, or no transit engine at the mount.
	ErrKeyNotFound = errors.New("vaulttransit: key not found")
	// ErrMalformed: Vault refused the ciphertext (not a transit ciphertext,
	// altered, sealed with another key, or below the minimum decryption
	// version). Retrying will not help.
	ErrMalformed = errors.New("vaulttransit: malformed ciphertext")
)

// KeyType is the transit key type Pier creates and expects.
const KeyType = "aes256-gcm96"

// Config says which Vault and which key to use.
type Config struct {
	// Address of Vault, e.g. "https://vault.service.consul:8200". Required.
	// TLS settings come from the standard VAULT_CACERT, VAULT_CAPATH,
	// VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME and
	// VAULT_SKIP_VERIFY variables, as with the vault CLI.
	Address string
	// Token authenticates every request. Required.
	Token string
	// Mount is the transit engine's path; default "transit".
	Mount string
	// Key is the transit key's name; default "pier".
	Key string
	// CreateKey creates the key (type aes256-gcm96) when it is missing, and
	// checks an existing one can encrypt. It needs the ops policy.
	CreateKey bool
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: mount "transit", key "pier".
func DefaultConfig() Config { return Config{Mount: "transit", Key: "pier"} }

// Transit seals and opens values with one transit key. It is safe for
// concurrent use.
type Transit struct {
	logical    *api.Logical
	mount, key string
	log        *slog.Logger
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// New returns a Transit for cfg. It talks to Vault only when cfg.CreateKey
// is set; otherwise the first Seal or Unseal is the first request.
func New(ctx context.Context, cfg Config) (*Transit, error) {
	def := DefaultConfig()
	if cfg.Mount == "" {
		cfg.Mount = def.Mount
	}
	if cfg.Key == "" {
		cfg.Key = def.Key
	}
	cfg.Mount = strings.Trim(cfg.Mount, "/")
	switch {
	case cfg.Address == "":
		return nil, errors.New("vaulttransit: no vault address")
	case cfg.Token == "":
		return nil, errors.New("vaulttransit: no vault token")
	case !namePattern.MatchString(cfg.Key):
		return nil, fmt.Errorf("vaulttransit: bad key name %q", cfg.Key)
	case strings.Contains(cfg.Mount, ".."):
		return nil, fmt.Errorf("vaulttransit: bad mount %q", cfg.Mount)
	}
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vaulttransit: vault client settings: %w", vc.Error)
	}
	vc.Address = cfg.Address
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: vault client: %w", err)
	}
	client.SetToken(cfg.Token)
	// The environment's VAULT_NAMESPACE still applies; VAULT_TOKEN does not.

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Transit{
		logical: client.Logical(),
		mount:   cfg.Mount,
		key:     cfg.Key,
		log:     log.With("component", "vaulttransit", "mount", cfg.Mount, "key", cfg.Key),
	}
	if cfg.CreateKey {
		if err := t.ensureKey(ctx); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ensureKey creates the key if missing (a no-op for an existing key) and
// checks it can be used for encryption without a context.
func (t *Transit) ensureKey(ctx context.Context) error {
	if _, err := t.write(ctx, "create key", "keys/"+t.key, map[string]any{"type": KeyType}); err != nil {
		return err
	}
	info, err := t.keyInfo(ctx, "read key")
	if err != nil {
		return err
	}
	switch {
	case !info.SupportsEncryption:
		return fmt.Errorf("vaulttransit: key %q on mount %q is a %s key, which cannot encrypt: use an %s key", t.key, t.mount, info.Type, KeyType)
	case info.Derived:
		return fmt.Errorf("vaulttransit: key %q on mount %q is a derived key, which needs a context: use a plain %s key", t.key, t.mount, KeyType)
	case info.Type != KeyType:
		t.log.Warn("transit key is not of the expected type", "type", info.Type, "want", KeyType)
	}
	return nil
}

// Seal encrypts plaintext with the newest key version.
func (t *Transit) Seal(ctx context.Context, plaintext []byte) (string, error) {
	data, err := t.write(ctx, "encrypt", "encrypt/"+t.key, map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(plaintext),
	})
	if err != nil {
		return "", err
	}
	return stringField(data, "ciphertext", "encrypt")
}

// Unseal decrypts a "vault:v<N>:..." value sealed with this key.
func (t *Transit) Unseal(ctx context.Context, ciphertext string) ([]byte, error) {
	if err := precheck(ciphertext); err != nil {
		return nil, err
	}
	data, err := t.write(ctx, "decrypt", "decrypt/"+t.key, map[string]any{"ciphertext": ciphertext})
	if err != nil {
		return nil, err
	}
	b64, err := stringField(data, "plaintext", "decrypt")
	if err != nil {
		return nil, err
	}
	pt, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("vaulttransit: decrypt: vault answered with a plaintext that is not base64")
	}
	return pt, nil
}

// Rewrap re-encrypts ciphertext with the newest key version inside Vault;
// the plaintext never leaves it.
func (t *Transit) Rewrap(ctx context.Context, ciphertext string) (string, error) {
	if err := precheck(ciphertext); err != nil {
		return "", err
	}
	data, err := t.write(ctx, "rewrap", "rewrap/"+t.key, map[string]any{"ciphertext": ciphertext})
	if err != nil {
		return "", err
	}
	return stringField(data, "ciphertext", "rewrap")
}

// Rotate adds a key version; later Seals use it. Needs the ops policy.
func (t *Transit) Rotate(ctx context.Context) error {
	_, err := t.write(ctx, "rotate", "keys/"+t.key+"/rotate", nil)
	return err
}

// KeyVersion returns the key's newest version. Needs the ops policy.
func (t *Transit) KeyVersion(ctx context.Context) (int, error) {
	info, err := t.keyInfo(ctx, "read key")
	if err != nil {
		return 0, err
	}
	return info.LatestVersion, nil
}

// SetMinDecryptionVersion makes Vault refuse values sealed with a version
// older than v (1: accept all). Vault keeps the older keys (this is not a
// trim), so lowering it again restores access. Needs the ops policy.
func (t *Transit) SetMinDecryptionVersion(ctx context.Context, v int) error {
	_, err := t.write(ctx, "configure key", "keys/"+t.key+"/config", map[string]any{"min_decryption_version": v})
	return err
}

// keyInfo is the part of GET transit/keys/<key> Pier reads.
type keyInfo struct {
	Type                 string `json:"type"`
	LatestVersion        int    `json:"latest_version"`
	MinDecryptionVersion int    `json:"min_decryption_version"`
	SupportsEncryption   bool   `json:"supports_encryption"`
	Derived              bool   `json:"derived"`
}

func (t *Transit) keyInfo(ctx context.Context, op string) (*keyInfo, error) {
	secret, err := t.logical.ReadWithContext(ctx, t.mount+"/keys/"+t.key)
	if err != nil {
		return nil, t.translate(op, err)
	}
	if secret == nil || secret.Data == nil {
		return nil, fmt.Errorf("%w: %s: no key %q on mount %q", ErrKeyNotFound, op, t.key, t.mount)
	}
	raw, err := json.Marshal(secret.Data)
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: %s: %w", op, err)
	}
	var info keyInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("vaulttransit: %s: unexpected answer from vault: %w", op, err)
	}
	return &info, nil
}

func (t *Transit) write(ctx context.Context, op, path string, body map[string]any) (map[string]any, error) {
	secret, err := t.logical.WriteWithContext(ctx, t.mount+"/"+path, body)
	if err != nil {
		return nil, t.translate(op, err)
	}
	if secret == nil {
		return nil, nil
	}
	return secret.Data, nil
}

func stringField(data map[string]any, name, op string) (string, error) {
	s, ok := data[name].(string)
	if !ok {
		return "", fmt.Errorf("vaulttransit: %s: vault answered without a %s", op, name)
	}
	return s, nil
}

// precheck refuses, without a round trip, what cannot be a transit
// ciphertext.
func precheck(ciphertext string) error {
	if !strings.HasPrefix(ciphertext, "vault:v") {
		return fmt.Errorf("%w: not a vault transit ciphertext", ErrMalformed)
	}
	return nil
}

// translate turns a Vault client error into one of this package's.
func (t *Transit) translate(op string, err error) error {
	var re *api.ResponseError
	if !errors.As(err, &re) { // transport trouble or a cancelled context
		return fmt.Errorf("vaulttransit: %s with key %q: %w", op, t.key, err)
	}
	msg := strings.Join(re.Errors, "; ")
	lower := strings.ToLower(msg)
	where := fmt.Sprintf("key %q on mount %q", t.key, t.mount)
	switch {
	case re.StatusCode == http.StatusForbidden:
		hint := "pier-control.hcl"
		switch op {
		case "create key", "read key", "rotate", "configure key":
			hint = "pier-ops.hcl"
		case "encrypt":
			hint += "; encrypt is also refused when the key does not exist"
		}
		return fmt.Errorf("%w: %s with %s is not allowed (the token is invalid or expired, or its policies lack it: see vault/%s)", ErrPermissionDenied, op, where, hint)
	case re.StatusCode == http.StatusNotFound && strings.Contains(lower, "no handler for route"):
		return fmt.Errorf("%w: no transit engine is mounted at %q", ErrKeyNotFound, t.mount)
	case re.StatusCode == http.StatusNotFound || strings.Contains(lower, "key not found"):
		return fmt.Errorf("%w: %s: no %s", ErrKeyNotFound, op, where)
	case re.StatusCode == http.StatusBadRequest && (op == "decrypt" || op == "rewrap"):
		return fmt.Errorf("%w: %s with %s: %s", ErrMalformed, op, where, msg)
	case re.StatusCode == http.StatusServiceUnavailable && strings.Contains(lower, "sealed"):
		return fmt.Errorf("vaulttransit: %s: vault is sealed", op)
	default:
		return fmt.Errorf("vaulttransit: %s with %s: vault answered %d: %s", op, where, re.StatusCode, msg)
	}
}
