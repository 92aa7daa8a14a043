package ops

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// TestVaultServerConfig starts Vault from vault/server.hcl (integrated
// storage, TLS listener; Shamir instead of seal-awskms.hcl, which needs
// AWS), initialises and unseals it over HTTPS, then loads Pier's policies
// and the JWT role that gives the control job its token through Nomad
// workload identity, as docs/operations.md does. What the policies allow
// is tested in control/secrets/vaulttransit (TestPolicies).
func TestVaultServerConfig(t *testing.T) {
	t.Parallel()
	bin := testenv.Tool(t, "vault")
	p := newPKI(t)
	p.issue(t, "vault", "vault.service.consul")
	dir := t.TempDir()
	pt := ports(t, 2)
	addr := fmt.Sprintf("https://127.0.0.1:%d", pt[0])
	cfg := agentConfig(t, dir, "vault/server.hcl", p.Dir,
		`"0.0.0.0:8200"`, fmt.Sprintf(`"127.0.0.1:%d"`, pt[0]),
		`"0.0.0.0:8201"`, fmt.Sprintf(`"127.0.0.1:%d"`, pt[1]),
		`"/opt/vault/data"`, fmt.Sprintf("%q", filepath.Join(dir, "data")))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	node := writeFile(t, dir, "node.hcl", fmt.Sprintf(`api_addr     = %q
cluster_addr = "https://127.0.0.1:%d"
`, addr, pt[1]))
	srv, err := testenv.StartServer("vault-config", []string{bin, "server", "-config", cfg, "-config", node},
		append([]string{"VAULT_LOG_LEVEL=warn"}, agentEnv...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAgent(t, srv) })
	hc := p.client()
	waitFor(t, 60*time.Second, "vault to answer over https", func() bool {
		select {
		case <-srv.Exited():
			t.Fatalf("vault exited:\n%s", srv.Log())
		default:
		}
		resp, err := hc.Get(addr + "/v1/sys/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 501 // not initialised yet
	})
	var init struct {
		Keys      []string `json:"keys"`
		RootToken string   `json:"root_token"`
	}
	if code, body := api(t, hc, "PUT", addr+"/v1/sys/init", "", "", map[string]int{"secret_shares": 1, "secret_threshold": 1}, &init); code != 200 {
		t.Fatalf("init: %d %s", code, body)
	}
	if code, body := api(t, hc, "PUT", addr+"/v1/sys/unseal", "", "", map[string]string{"key": init.Keys[0]}, nil); code != 200 {
		t.Fatalf("unseal: %d %s", code, body)
	}
	waitFor(t, 60*time.Second, "vault to be active", func() bool {
		resp, err := hc.Get(addr + "/v1/sys/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	env := []string{"VAULT_ADDR=" + addr, "VAULT_CACERT=" + filepath.Join(p.Dir, "ca.pem"), "VAULT_TOKEN=" + init.RootToken}
	root := testenv.RepoRoot(t)
	run(t, env, bin, "secrets", "enable", "transit")
	for _, name := range []string{"pier-control", "pier-edge", "pier-ops"} {
		run(t, env, bin, "policy", "write", name, filepath.Join(root, "vault", name+".hcl"))
	}
	// Nomad's JWT auth method (what `nomad setup vault` creates), here
	// with a local key instead of Nomad's JWKS URL, and Pier's role on it.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	run(t, env, bin, "auth", "enable", "-path", "jwt-nomad", "jwt")
	run(t, env, bin, "write", "auth/jwt-nomad/config", "jwt_validation_pubkeys="+pub, "default_role=pier-control")
	run(t, env, bin, "write", "auth/jwt-nomad/role/pier-control", "@"+filepath.Join(root, "vault", "nomad-role-pier-control.json"))
	out := run(t, env, bin, "read", "-field", "token_policies", "auth/jwt-nomad/role/pier-control")
	if out != "[pier-control]" {
		t.Errorf("role token_policies = %q, want [pier-control]", out)
	}
}
