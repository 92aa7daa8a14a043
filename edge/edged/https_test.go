package edged_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/cache/cachetest"
	"github.com/pierhq/pier/edge/coord/coordtest"
	"github.com/pierhq/pier/edge/edged"
	"github.com/pierhq/pier/tests/testenv"
)

// staticTLS is a TLS provider with one certificate; its HTTP wrapper marks
// the requests it passes through.
type staticTLS struct{ cert tls.Certificate }

func (s staticTLS) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{s.cert}}
}
func (s staticTLS) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Wrapped", "1")
		next.ServeHTTP(w, r)
	})
}

type hostTable map[string]string

func (h hostTable) Project(host string) (string, bool) { p, ok := h[host]; return p, ok }

// TestCustomHostsAndHTTPS: a custom domain serves its project's production
// deployment, on the plain listener (through the TLS provider's wrapper)
// and on the HTTPS listener; unknown hosts are still 404.
func TestCustomHostsAndHTTPS(t *testing.T) {
	st := newStack(t)
	m := cachetest.Publish(t, st.blobs, deployment("dpl-cccc", "shop", "prj-shop", "vc", time.Now().UTC()))
	promote(t, st.coord, m)

	certFile, keyFile := testenv.WriteSelfSigned(t, "www.shop.test")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := edged.New(edged.Config{ID: "edge-tls", Addr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", BaseDomain: "localhost",
		CacheDir: t.TempDir(), Logger: coordtest.Logger(t), RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond},
		edged.Deps{Coord: st.coord, Blobs: st.blobs, Hosts: hostTable{"www.shop.test": "shop"}, TLS: staticTLS{cert}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	e := &edgeProc{Server: s, id: "edge-tls"}
	waitReady(t, e)
	if s.HTTPSAddr() == "" {
		t.Fatal("no HTTPS address")
	}

	r := serving(t, e, "WWW.shop.test", "/", "home vc")
	if r.header.Get("X-Wrapped") != "1" || r.header.Get("X-Pier-Deployment") != "dpl-cccc" {
		t.Errorf("plain listener headers: %v", r.header)
	}
	if r := get(t, e, "www.other.test", "/"); r.status != 404 {
		t.Errorf("unknown host: %d", r.status)
	}

	pool := x509.NewCertPool()
	raw, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(raw)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "www.shop.test"}}}
	req, _ := http.NewRequest("GET", "https://"+s.HTTPSAddr()+"/about", nil)
	req.Host = "www.shop.test"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "about vc" || resp.Header.Get("X-Wrapped") != "" {
		t.Errorf("https: %d %q wrapped=%q", resp.StatusCode, body, resp.Header.Get("X-Wrapped"))
	}
}
