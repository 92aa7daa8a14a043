package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// TestCustomDomainTLS: the whole path of a custom domain through the real
// pier binary (dev mode), a real ACME CA (pebble) and an in-process DNS
// server: a deployed project, a domain added (pending), verification
// refused while its TXT record is wrong and while it points elsewhere,
// then verified — whereupon the edge serves the project's current
// production deployment at it over HTTPS with a certificate pebble issued
// (checked against pebble's root), redirects HTTP to HTTPS, still answers
// ACME HTTP-01 challenges, refuses a takeover by another project, and
// stops serving it once deleted.
func TestCustomDomainTLS(t *testing.T) {
	dns := testenv.DNS(t)
	dns.SetDefaultA("127.0.0.1") // pebble validates against the edges on loopback
	ports, err := testenv.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	httpPort, httpsPort := ports[0], ports[1]
	peb := testenv.StartPebble(t, dns.Addr, httpPort, httpsPort)
	wildCert, wildKey := testenv.WriteSelfSigned(t, "*.localhost")
	dev := testenv.StartDev(t, t.TempDir(), "--wildcard-cert", wildCert, "--wildcard-key", wildKey,
		"--edge-addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--https-addr", fmt.Sprintf("127.0.0.1:%d", httpsPort),
		"--acme-ca", peb.DirectoryURL, "--acme-ca-root", peb.CAFile, "--dns-resolver", dns.Addr)
	if len(dev.EdgeHTTPSURLs) != 1 {
		t.Fatalf("dev.json edge_https_urls = %v", dev.EdgeHTTPSURLs)
	}

	// A deployed project.
	for _, name := range []string{"shop", "blog"} {
		if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": name, "repo_url": "https://git.example.test/" + name + ".git"}, nil); code != 201 {
			t.Fatalf("create project %s: %d", name, code)
		}
	}
	site := t.TempDir()
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>shop front</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.PierBinary(t), "deploy", "--project", "shop", site)
	cmd.Env = append(os.Environ(), "PIER_API="+dev.APIURL, "PIER_TOKEN="+dev.Token)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pier deploy: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 15*time.Second, "shop live", func() bool {
		return strings.Contains(readBody(t, dev.Get(t, 0, "shop."+dev.BaseDomain, "/")), "shop front")
	})

	// Added: pending, with its TXT challenge.
	const domain = "www.shop-customer.test"
	var d struct {
		Name, State, Token string
		Records            []struct{ Type, Name, Value string }
	}
	if code := dev.API(t, "POST", "/v1/projects/shop/domains", map[string]any{"name": domain}, &d); code != 201 || d.State != "pending" {
		t.Fatalf("add domain: %d %+v", code, d)
	}
	if d.Records[0].Type != "TXT" || d.Records[0].Name != "_pier-challenge."+domain || d.Records[0].Value != d.Token {
		t.Errorf("records: %+v", d.Records)
	}
	type apiError struct {
		Error struct{ Code, Message string }
	}
	verify := func() (int, apiError) {
		var e apiError
		code := dev.API(t, "POST", "/v1/projects/shop/domains/"+domain+"/verify", nil, &e)
		return code, e
	}

	// A pending domain is neither routed nor given a certificate.
	if resp := dev.Get(t, 0, domain, "/"); resp.StatusCode != 404 {
		t.Errorf("pending domain over HTTP: %d", resp.StatusCode)
	}

	// Wrong TXT.
	dns.SetTXT("_pier-challenge."+domain, "pier-verify=not-the-token")
	dns.SetA(domain, "127.0.0.1")
	if code, e := verify(); code != 422 || e.Error.Code != "txt_mismatch" {
		t.Fatalf("verify with a wrong TXT: %d %+v", code, e)
	}
	// Points elsewhere.
	dns.SetTXT("_pier-challenge."+domain, d.Token)
	dns.SetA(domain, "198.51.100.9")
	if code, e := verify(); code != 422 || e.Error.Code != "not_pointing" || !strings.Contains(e.Error.Message, "198.51.100.9") {
		t.Fatalf("verify pointing elsewhere: %d %+v", code, e)
	}
	// Right.
	dns.SetA(domain, "127.0.0.1")
	if code, e := verify(); code != 200 {
		t.Fatalf("verify: %d %+v", code, e)
	}

	// HTTPS with a certificate from pebble, verified against its root.
	roots := peb.Roots(t)
	client := httpsClient(roots, httpsPort)
	start := time.Now()
	var body string
	testenv.WaitFor(t, 60*time.Second, "HTTPS on the custom domain", func() bool {
		resp, err := client.Get("https://" + domain + "/")
		if err != nil {
			t.Logf("GET https://%s/: %v", domain, err)
			return false
		}
		body = readBody(t, resp)
		return resp.StatusCode == 200
	})
	t.Logf("first HTTPS answer on %s (certificate issued on demand by pebble) after %s", domain, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(body, "shop front") {
		t.Errorf("HTTPS body %q, want the production deployment", body)
	}
	resp, err := client.Get("https://" + domain + "/")
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if leaf := resp.TLS.PeerCertificates[0]; leaf.VerifyHostname(domain) != nil || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Errorf("served certificate: subject %v issuer %v", leaf.DNSNames, leaf.Issuer)
	}

	// HTTP redirects to HTTPS, keeping path and query.
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/a/b?c=1", httpPort), nil)
	req.Host = domain
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if want := fmt.Sprintf("https://%s:%d/a/b?c=1", domain, httpsPort); resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Errorf("HTTP on a verified domain: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// ACME HTTP-01 challenges still reach the ACME solver, not the redirect.
	req, _ = http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/.well-known/acme-challenge/unknown-token", httpPort), nil)
	req.Host = domain
	if resp, err = noFollow.Do(req); err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != 404 {
		t.Errorf("an unknown ACME challenge on a verified domain: %d, want 404 (never a redirect)", resp.StatusCode)
	}
	// Project hosts under the base domain: the operator's wildcard
	// certificate over HTTPS, plain HTTP unchanged.
	wildPool := x509.NewCertPool()
	if raw, err := os.ReadFile(wildCert); err != nil || !wildPool.AppendCertsFromPEM(raw) {
		t.Fatalf("wildcard cert: %v", err)
	}
	if resp, err := httpsClient(wildPool, httpsPort).Get("https://shop.localhost/"); err != nil {
		t.Errorf("https://shop.localhost/ with the wildcard certificate: %v", err)
	} else if body := readBody(t, resp); !strings.Contains(body, "shop front") {
		t.Errorf("https://shop.localhost/: %d %q", resp.StatusCode, body)
	}
	if resp := dev.Get(t, 0, "shop."+dev.BaseDomain, "/"); resp.StatusCode != 200 {
		t.Errorf("project host over HTTP: %d", resp.StatusCode)
	}
	// With a wildcard certificate control names deployment, stage and
	// preview hosts flat (<label>--<project>.<base>, one label deep), so
	// the one certificate covers them too; the nested form still routes
	// over HTTP but no *.<base> certificate can cover it.
	var p project
	if code := dev.API(t, "GET", "/v1/projects/shop", nil, &p); code != 200 || p.ActiveDeployment == "" {
		t.Fatalf("project: %d %+v", code, p)
	}
	var dep deployment
	if code := dev.API(t, "GET", "/v1/deployments/"+p.ActiveDeployment, nil, &dep); code != 200 {
		t.Fatalf("deployment: %d", code)
	}
	flat := p.ActiveDeployment + "--shop.localhost"
	if u, err := url.Parse(dep.URL); err != nil || u.Hostname() != flat {
		t.Errorf("deployment URL %q, want the host %s", dep.URL, flat)
	}
	if resp, err := httpsClient(wildPool, httpsPort).Get("https://" + flat + "/"); err != nil {
		t.Errorf("https://%s/ with the wildcard certificate: %v", flat, err)
	} else if body := readBody(t, resp); !strings.Contains(body, "shop front") || resp.Header.Get("X-Pier-Deployment") != p.ActiveDeployment {
		t.Errorf("https://%s/: %d %q", flat, resp.StatusCode, body)
	}
	if _, err := httpsClient(wildPool, httpsPort).Get("https://" + p.ActiveDeployment + ".shop.localhost/"); err == nil {
		t.Error("the nested host verified against a *.localhost certificate")
	}
	if resp := dev.Get(t, 0, p.ActiveDeployment+".shop."+dev.BaseDomain, "/"); resp.StatusCode != 200 {
		t.Errorf("nested deployment host over HTTP: %d", resp.StatusCode)
	}

	// No certificate for a name that is not a verified domain.
	if _, err := client.Get("https://unverified.customer.test/"); err == nil {
		t.Error("an unverified name got a certificate")
	}

	// Takeover by another project.
	var e apiError
	if code := dev.API(t, "POST", "/v1/projects/blog/domains", map[string]any{"name": domain}, &e); code != 409 || e.Error.Code != "domain_taken" {
		t.Errorf("takeover: %d %+v", code, e)
	}

	// Deleted: no longer routed.
	if code := dev.API(t, "DELETE", "/v1/projects/shop/domains/"+domain, nil, nil); code != 204 {
		t.Fatalf("delete domain: %d", code)
	}
	testenv.WaitFor(t, 10*time.Second, "deleted domain unrouted", func() bool {
		return dev.Get(t, 0, domain, "/").StatusCode == 404
	})
}

// httpsClient dials every host at the edge's HTTPS port on loopback and
// trusts only roots.
func httpsClient(roots *x509.CertPool, port int) *http.Client {
	var d net.Dialer
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
		},
	}}
}
