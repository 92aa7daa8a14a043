// vault.go: a Vault dev server (`vault server -dev`, in memory, unsealed,
// a random root token), started once per test binary on a free loopback
// port, with the transit engine mounted at "transit". Tests that need
// isolation use a key name of their own. Packages that use it stop it from
// TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Environment:
//
//	PIER_VAULT_ADDR=http://...   use this existing server instead of starting one
//	PIER_VAULT_TOKEN=...         a token for it that may mount engines (or whose
//	                             server has transit mounted) and manage keys
//	PIER_VAULT_BIN=/path/vault   the binary to run (else tests/tools/build.sh builds it)
//	PIER_REQUIRE_SERVERS=1       fail instead of skip when no server can be had
//
// It speaks to Vault with net/http only, so test binaries that use it do
// not link the Vault client.

package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// VaultServer is a running Vault.
type VaultServer struct {
	Addr    string // http://127.0.0.1:PORT
	Token   string // root token (dev server) or PIER_VAULT_TOKEN
	Transit string // the transit engine's mount path: "transit"
}

// vault is the one server of this test binary.
var vault struct {
	once sync.Once
	srv  VaultServer
	err  error
}

// Vault returns the test binary's Vault, starting it on first use (a few
// seconds, once the binary is built), or the server named by
// PIER_VAULT_ADDR. It skips t when no Vault binary can be had, or fails it
// if PIER_REQUIRE_SERVERS=1.
func Vault(t testing.TB) VaultServer {
	t.Helper()
	addr := os.Getenv("PIER_VAULT_ADDR")
	bin := ""
	if addr == "" {
		bin = Tool(t, "vault") // skips or fails t outside the Once
	}
	vault.once.Do(func() {
		if addr != "" {
			vault.srv, vault.err = existingVault(addr, os.Getenv("PIER_VAULT_TOKEN"))
		} else {
			vault.srv, vault.err = startVault(bin)
		}
	})
	if vault.err != nil {
		t.Fatalf("testenv: vault: %v", vault.err)
	}
	return vault.srv
}

func existingVault(addr, token string) (VaultServer, error) {
	if token == "" {
		return VaultServer{}, errors.New("PIER_VAULT_ADDR is set but PIER_VAULT_TOKEN is not")
	}
	v := VaultServer{Addr: strings.TrimRight(addr, "/"), Token: token, Transit: "transit"}
	return v, v.mountTransit()
}

func startVault(bin string) (VaultServer, error) {
	token := "root-" + randomHex(12)
	var errs []error
	// A free port can be taken before Vault binds it, and Vault also wants
	// the next port for its cluster listener: retry a few times.
	for range 3 {
		port, err := freePortPair()
		if err != nil {
			return VaultServer{}, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		s, err := StartServer("vault", []string{bin, "server", "-dev",
			"-dev-root-token-id=" + token,
			"-dev-listen-address=" + addr,
			"-dev-no-store-token", // keep ~/.vault-token alone
		}, []string{
			"AWS_CA_BUNDLE=", "VAULT_ADDR=", "VAULT_TOKEN=", "VAULT_API_ADDR=", "VAULT_CLUSTER_ADDR=",
			"VAULT_LOG_LEVEL=warn",
		})
		if err != nil {
			return VaultServer{}, err
		}
		v := VaultServer{Addr: "http://" + addr, Token: token, Transit: "transit"}
		// 200 only when initialised, unsealed and active.
		if err := s.WaitHTTP(v.Addr+"/v1/sys/health", 60*time.Second, nil); err != nil {
			s.Stop()
			errs = append(errs, err)
			continue
		}
		if err := v.mountTransit(); err != nil {
			s.Stop()
			return VaultServer{}, err
		}
		return v, nil
	}
	return VaultServer{}, fmt.Errorf("start vault: %w", errors.Join(errs...))
}

// freePortPair returns a free port p whose neighbour p+1 was free too.
func freePortPair() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no pair of free ports")
}

// mountTransit enables the transit engine at v.Transit, unless it is
// already there.
func (v VaultServer) mountTransit() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mounts struct {
		Data map[string]struct {
			Type string `json:"type"`
		} `json:"data"`
	}
	if err := v.Do(ctx, http.MethodGet, "sys/mounts", nil, &mounts); err == nil {
		if m, ok := mounts.Data[v.Transit+"/"]; ok {
			if m.Type != "transit" {
				return fmt.Errorf("%s/ is mounted, but as %q, not transit", v.Transit, m.Type)
			}
			return nil
		}
	}
	// Not there, or the token may not list mounts: try to mount it.
	err := v.Do(ctx, http.MethodPost, "sys/mounts/"+v.Transit, map[string]any{"type": "transit"}, nil)
	if err != nil && !strings.Contains(err.Error(), "already in use") {
		return fmt.Errorf("mount transit: %w", err)
	}
	return nil
}

// Do sends one request to the Vault HTTP API (path without "/v1/") with
// v.Token, JSON-encoding body when not nil and decoding the answer into
// out when not nil. A non-2xx answer is an error carrying Vault's messages.
func (v VaultServer) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.Addr+"/v1/"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", v.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Errors []string `json:"errors"`
		}
		json.Unmarshal(raw, &e) //nolint:errcheck // the status says enough
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.Join(e.Errors, "; "))
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}
