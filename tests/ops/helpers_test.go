package ops

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// tlsDirInRepo is where the repository's agent configs expect their
// certificates; tests rewrite it to a directory of their own.
const tlsDirInRepo = "/etc/pier/tls"

// pki is a throwaway CA in a directory, laid out as the agents' configs
// expect: ca.pem, <name>.pem, <name>-key.pem.
type pki struct {
	Dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Pier test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{Dir: t.TempDir(), cert: cert, key: key, pool: x509.NewCertPool()}
	p.pool.AddCert(cert)
	writePEM(t, filepath.Join(p.Dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

// issue writes <name>.pem and <name>-key.pem, a server and client
// certificate for the DNS names given plus localhost and 127.0.0.1.
func (p *pki) issue(t testing.TB, name string, dnsNames ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     append([]string{"localhost"}, dnsNames...),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(p.Dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(p.Dir, name+"-key.pem"), "EC PRIVATE KEY", kder)
}

// client is an HTTPS client that trusts only this CA.
func (p *pki) client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsConfig(p.pool),
	}}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// repoFile reads a file of the repository.
func repoFile(t testing.TB, rel string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// agentConfig copies the repository's agent config rel into dir with its
// TLS directory pointed at tlsDir and the replacements old→new applied,
// failing if one of them does not occur, and returns the copy's path.
func agentConfig(t testing.TB, dir, rel, tlsDir string, replace ...string) string {
	t.Helper()
	text := string(repoFile(t, rel))
	if tlsDir != "" {
		replace = append(replace, tlsDirInRepo, tlsDir)
	}
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(text, replace[i]) {
			t.Fatalf("%s no longer contains %q", rel, replace[i])
		}
		text = strings.ReplaceAll(text, replace[i], replace[i+1])
	}
	out := filepath.Join(dir, strings.ReplaceAll(rel, "/", "_"))
	if err := os.WriteFile(out, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeFile writes text to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// uuid returns a random UUID (Consul and Nomad want their secrets in that
// form).
func uuid() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// run runs a command with extra environment and returns its combined
// output, failing t if it fails.
func run(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = environ(append(append([]string{}, agentEnv...), env...))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// api sends a JSON request with a token header and decodes a JSON answer
// into out (when non-nil); it returns the status and the raw body.
func api(t testing.TB, c *http.Client, method, url, tokenHeader, token string, body, out any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(tokenHeader, token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

// waitFor polls cond every 100ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, cond)
}

// ports returns n free loopback ports.
func ports(t testing.TB, n int) []int {
	t.Helper()
	p, err := testenv.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// agentEnv clears the HashiCorp CLIs' environment that would point them
// elsewhere, and AWS_CA_BUNDLE, which breaks the agents' start-up here.
var agentEnv = []string{
	"AWS_CA_BUNDLE=",
	"CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN=", "CONSUL_CACERT=", "CONSUL_HTTP_SSL=",
	"NOMAD_ADDR=", "NOMAD_TOKEN=", "NOMAD_CACERT=", "NOMAD_NAMESPACE=", "NOMAD_REGION=",
	"VAULT_ADDR=", "VAULT_TOKEN=", "VAULT_CACERT=",
}

func tlsConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// environ is os.Environ with env applied: "NAME=value" sets, "NAME="
// removes.
func environ(env []string) []string {
	drop := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	for _, kv := range env {
		if !strings.HasSuffix(kv, "=") {
			out = append(out, kv)
		}
	}
	return out
}
