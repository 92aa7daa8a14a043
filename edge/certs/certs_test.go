package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/certs"
	"github.com/pierhq/pier/edge/coord/coordtest"
	"github.com/pierhq/pier/edge/coord/raftkv"
	"github.com/pierhq/pier/tests/testenv"
)

type verified map[string]bool

func (v verified) Verified(host string) bool { return v[host] }

// edge is one edge's listeners around a Manager.
type edge struct {
	m         *certs.Manager
	httpsAddr string
}

func startEdge(t *testing.T, m *certs.Manager, httpLn, httpsLn net.Listener) *edge {
	t.Helper()
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "site "+r.Host) })
	for _, l := range []struct {
		ln  net.Listener
		tls bool
	}{{httpLn, false}, {httpsLn, true}} {
		ln := l.ln
		srv := &http.Server{Handler: m.HTTPHandler(site)}
		if l.tls {
			srv = &http.Server{Handler: site, TLSConfig: m.TLSConfig()}
			go srv.ServeTLS(ln, "", "")
		} else {
			go srv.Serve(ln)
		}
		t.Cleanup(func() { srv.Close() })
	}
	return &edge{m: m, httpsAddr: httpsLn.Addr().String()}
}

func handshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 60 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestTwoEdgesOneIssuance: two edges sharing the KV storage get the first
// handshakes for a verified domain at the same moment; pebble validates
// the challenge on the first edge only (its ports), yet both edges end up
// serving the one certificate issued, under the storage lock. A name that
// is not verified gets none; the operator's wildcard certificate is served
// for the names it covers without any ACME order.
func TestTwoEdgesOneIssuance(t *testing.T) {
	hosts := verified{"www.shared.test": true}
	c := startCluster(t, hosts, testenv.PebbleOptions{}, 0)
	edges, roots, addr, ports, wildCert := c.edges, c.roots, c.addr, c.ports, c.wildCert
	leaves := make([]*x509.Certificate, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	start := time.Now()
	for i, e := range edges {
		wg.Go(func() { leaves[i], errs[i] = handshake(e.httpsAddr, "www.shared.test", roots) })
	}
	wg.Wait()
	t.Logf("both edges served www.shared.test after %s", time.Since(start).Round(time.Millisecond))
	for i := range edges {
		if errs[i] != nil {
			t.Fatalf("edge %d: %v", i, errs[i])
		}
	}
	if leaves[0].SerialNumber.Cmp(leaves[1].SerialNumber) != 0 {
		t.Errorf("two certificates issued: serials %s and %s", leaves[0].SerialNumber, leaves[1].SerialNumber)
	}

	if _, err := handshake(edges[1].httpsAddr, "unverified.shared.test", roots); err == nil {
		t.Error("an unverified name got a certificate")
	}
	wildPool := x509.NewCertPool()
	raw, _ := os.ReadFile(wildCert)
	wildPool.AppendCertsFromPEM(raw)
	leaf, err := handshake(edges[0].httpsAddr, "shop.pier.test", wildPool)
	if err != nil || !strings.Contains(strings.Join(leaf.DNSNames, ","), "*.pier.test") {
		t.Errorf("wildcard for shop.pier.test: %v %v", leaf, err)
	}
	if _, err := handshake(edges[0].httpsAddr, "a.shop.pier.test", wildPool); err == nil {
		t.Error("the wildcard was served for a name two labels deep")
	}

	// HTTP: a verified domain is redirected, anything else served.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct {
		host, want string
		status     int
	}{
		{"www.shared.test", "https://www.shared.test:" + fmt.Sprint(ports[1]) + "/x?y=1", 308},
		{"shop.pier.test", "", 200},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr(0)+"/x?y=1", nil)
		req.Host = tt.host
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.want {
			t.Errorf("http %s: %d %q, want %d %q", tt.host, resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.want)
		}
	}
}

// cluster is two edges sharing one KV storage, with pebble validating
// challenges on the first edge's ports.
type cluster struct {
	edges    []*edge
	roots    *x509.CertPool // pebble's issuing root
	ports    []int          // edge i: HTTP ports[2i], HTTPS ports[2i+1]
	wildCert string         // the operator's *.pier.test certificate
}

func (c *cluster) addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.ports[i]) }

func startCluster(t *testing.T, hosts verified, o testenv.PebbleOptions, renewCheck time.Duration) *cluster {
	t.Helper()
	dns := testenv.DNS(t)
	dns.SetDefaultA("127.0.0.1")
	// Each edge's HTTP and HTTPS listeners, bound before pebble picks its
	// own ports.
	var lns []net.Listener
	var ports []int
	for range 4 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	peb := testenv.StartPebbleWith(t, dns.Addr, ports[0], ports[1], o)
	caPEM, _ := os.ReadFile(peb.CAFile)
	caPool := x509.NewCertPool()
	caPool.AppendCertsFromPEM(caPEM)

	kv, err := raftkv.Open(raftkv.Config{Dir: t.TempDir(), Logger: coordtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	wildCert, wildKey := testenv.WriteSelfSigned(t, "*.pier.test")

	var edges []*edge
	for i := range 2 {
		m, err := certs.New(certs.Config{CA: peb.DirectoryURL, CARoots: caPool, HTTPAddr: addr(2 * i), HTTPSAddr: addr(2*i + 1),
			WildcardCert: wildCert, WildcardKey: wildKey, RenewCheckInterval: renewCheck, Logger: coordtest.Logger(t).With("edge", i)},
			certs.Deps{Storage: certs.NewKVStorage(kv), Hosts: hosts})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		edges = append(edges, startEdge(t, m, lns[2*i], lns[2*i+1]))
	}
	return &cluster{edges: edges, roots: peb.Roots(t), ports: ports, wildCert: wildCert}
}

// TestRenewal: a certificate is renewed before it expires, by one edge
// under the storage lock, and the other edge then serves the renewed one
// from the shared storage. Pebble issues 15-second certificates here and
// the edges check for renewals every second (in production: 90-day
// certificates, checked every 10 minutes).
func TestRenewal(t *testing.T) {
	const validity = 15 * time.Second
	c := startCluster(t, verified{"www.renew.test": true}, testenv.PebbleOptions{Validity: validity}, time.Second)
	first, err := handshake(c.edges[0].httpsAddr, "www.renew.test", c.roots)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, err := handshake(c.edges[1].httpsAddr, "www.renew.test", c.roots); err != nil || leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("edge 1 before the renewal: %v (serial %v), want the first certificate", err, leaf)
	}
	if life := first.NotAfter.Sub(first.NotBefore); life > validity+time.Second {
		t.Fatalf("pebble issued a %s certificate, want %s", life, validity)
	}
	var renewed *x509.Certificate
	testenv.WaitFor(t, 2*validity, "edge 0 serving a renewed certificate", func() bool {
		leaf, err := handshake(c.edges[0].httpsAddr, "www.renew.test", c.roots)
		if err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			renewed = leaf
			return true
		}
		time.Sleep(250 * time.Millisecond)
		return false
	})
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %s, not after the first's %s", renewed.NotAfter, first.NotAfter)
	}
	if left := first.NotAfter.Sub(time.Now()); left <= 0 {
		t.Logf("note: renewed %s after the first certificate expired (a slow machine)", -left)
	} else {
		t.Logf("renewed with %s of the first certificate's %s left", left.Round(time.Second), validity)
	}
	testenv.WaitFor(t, 2*validity, "edge 1 serving the renewed certificate", func() bool {
		leaf, err := handshake(c.edges[1].httpsAddr, "www.renew.test", c.roots)
		if err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if leaf.SerialNumber.Cmp(renewed.SerialNumber) != 0 && leaf.NotAfter.Before(renewed.NotAfter.Add(validity/2)) {
				t.Errorf("edge 1 renewed again (serial %s) instead of loading edge 0's (%s)", leaf.SerialNumber, renewed.SerialNumber)
			}
			return true
		}
		time.Sleep(250 * time.Millisecond)
		return false
	})
}

// TestNewErrors: bad wildcard files are refused at start.
func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	cert, key := testenv.WriteSelfSigned(t, "*.pier.test")
	tests := []struct {
		name      string
		cert, key string
		want      string
	}{
		{"cert without key", cert, "", "both"},
		{"unreadable", filepath.Join(dir, "none.pem"), key, "no such file"},
		{"not pem", junk, key, "wildcard certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := certs.New(certs.Config{WildcardCert: tt.cert, WildcardKey: tt.key}, certs.Deps{Storage: certs.FileStorage(dir), Hosts: verified{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error about %q", err, tt.want)
			}
		})
	}
}
