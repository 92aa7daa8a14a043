// pebble.go: Let's Encrypt's test ACME CA (Debian package `pebble`), one
// per test on random loopback ports, validating challenges for real
// against the addresses a DNS server (DNSServer) gives.

package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Pebble is a running pebble ACME server.
type Pebble struct {
	// DirectoryURL is the ACME directory (https://127.0.0.1:port/dir).
	DirectoryURL string
	// CAFile is a PEM file of the certificate pebble's own HTTPS uses: an
	// ACME client must trust it (--acme-ca-root).
	CAFile string
	mgmt   string
	client *http.Client
}

// StartPebble starts pebble with challenges validated on httpPort
// (http-01) and tlsPort (tls-alpn-01) of the address dnsAddr resolves a
// domain to. It is stopped by t.Cleanup. Without the pebble binary the
// test is skipped (failed under PIER_REQUIRE_SERVERS=1).
func StartPebble(t testing.TB, dnsAddr string, httpPort, tlsPort int) *Pebble {
	t.Helper()
	return StartPebbleWith(t, dnsAddr, httpPort, tlsPort, PebbleOptions{})
}

// PebbleOptions are StartPebbleWith's settings beyond the ports.
type PebbleOptions struct {
	// Validity is the lifetime of the certificates pebble issues, whole
	// seconds (pebble's certificateValidityPeriod); 0 = pebble's default
	// (5 years). A short one lets a test see renewals.
	Validity time.Duration
}

// StartPebbleWith is StartPebble with options.
func StartPebbleWith(t testing.TB, dnsAddr string, httpPort, tlsPort int, o PebbleOptions) *Pebble {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		Unavailable(t, "pebble not installed (apt-get install pebble)")
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeSelfSigned(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	var ports []int
	for { // never the challenge ports the caller picked and has not bound yet
		if ports, err = FreePorts(2); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ports, httpPort) && !slices.Contains(ports, tlsPort) {
			break
		}
	}
	listen, mgmt := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": httpPort, "tlsPort": tlsPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	if o.Validity > 0 {
		cfg["pebble"].(map[string]any)["certificateValidityPeriod"] = int(o.Validity / time.Second)
	}
	raw, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := StartServer("pebble", []string{bin, "-config", cfgFile, "-dnsserver", dnsAddr, "-strict=false"},
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble output:\n%s", srv.Log())
		}
		srv.Stop()
	})
	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	p := &Pebble{DirectoryURL: "https://" + listen + "/dir", CAFile: certFile, mgmt: "https://" + mgmt,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := p.client.Get(p.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-srv.Exited():
			t.Fatalf("pebble exited:\n%s", srv.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not ready after 30s: %v\n%s", err, srv.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Roots returns pebble's root CA for this run (it is random per start):
// the pool certificates pebble issued verify against.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, path := range []string{"/roots/0", "/intermediates/0"} {
		resp, err := p.client.Get(p.mgmt + path)
		if err != nil {
			t.Fatalf("pebble %s: %v", path, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/roots/0" && !pool.AppendCertsFromPEM(raw) {
			t.Fatalf("pebble %s: no certificate in %q", path, raw)
		}
	}
	return pool
}

// WriteSelfSigned writes a self-signed P-256 certificate for names (a CA
// certificate, so it is its own root) and its key, as PEM files in a
// temporary directory: an operator's wildcard certificate in tests.
func WriteSelfSigned(t testing.TB, names ...string) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := writeCert(certFile, keyFile, names, nil); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// writeSelfSigned writes a P-256 certificate for 127.0.0.1 and localhost.
func writeSelfSigned(certFile, keyFile string) error {
	return writeCert(certFile, keyFile, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
}

func writeCert(certFile, keyFile string, names []string, ips []net.IP) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  ips,
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}
