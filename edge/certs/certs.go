// Package certs gives the edges their TLS certificates: a wildcard
// certificate the operator supplies for the base domain (project and
// preview hosts), and, for verified custom domains, certificates obtained
// from an ACME CA (Let's Encrypt by default) on demand through certmagic,
// the only importer of certmagic and zap.
//
// Certificates are issued only for names the edge's Hosts reports as
// verified (the decision function), are kept in a certmagic.Storage every
// edge reads — KVStorage over the coordination KV (Consul) in production,
// certmagic.FileStorage in the data dir in embedded mode — and are obtained
// and renewed under the storage's lock, so one edge issues while the
// others wait and then load the result. Renewal before expiry is
// certmagic's (it renews in the background once a third of the lifetime
// is left). ACME HTTP-01 challenges are answered on the edges' plain HTTP
// listeners from the shared storage (any edge answers for any other), and
// TLS-ALPN-01 on their HTTPS listeners.
//
// Imports: edge/coord (the KV port, for KVStorage). Wired by
// control/cmd/pier into edge/edged through edged's own interface.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// LetsEncrypt is the default ACME directory.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// Config configures one edge's certificates.
type Config struct {
	// CA is the ACME directory URL; default LetsEncrypt.
	CA string
	// CARoots are the roots trusted for the CA's own HTTPS endpoint (a
	// private CA, pebble in tests); nil means the system roots.
	CARoots *x509.CertPool
	// Email is the ACME account's contact; optional.
	Email string
	// WildcardCert and WildcardKey are PEM files of a certificate the
	// operator supplies, typically for *.<base-domain>: it is served for
	// every name it covers, and no ACME certificate is sought for those.
	WildcardCert, WildcardKey string
	// HTTPAddr and HTTPSAddr are the edge's listen addresses: challenge
	// solvers then never try to bind them themselves, and HTTP→HTTPS
	// redirects name the HTTPS port when it is not 443.
	HTTPAddr, HTTPSAddr string
	// RenewCheckInterval is how often the background maintenance looks
	// for certificates to renew; default certmagic's 10 minutes. A
	// certificate is renewed once a third of its lifetime is left, or
	// earlier when the CA's renewal information (ARI) says so.
	RenewCheckInterval time.Duration
	Logger             *slog.Logger
}

// Hosts reports which names may get a certificate: the verified custom
// domains the edge serves.
type Hosts interface {
	Verified(host string) bool
}

// Deps are the manager's ports; both are required.
type Deps struct {
	Storage certmagic.Storage
	Hosts   Hosts
}

// Manager serves certificates to one edge's HTTPS listener and ACME
// challenges and redirects on its HTTP listener.
type Manager struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	cache    *certmagic.Cache
	magic    *certmagic.Config
	issuer   *certmagic.ACMEIssuer
	wildcard *tls.Certificate
}

// New builds a manager. It reads the wildcard certificate files (a bad
// pair is an error now rather than at the first handshake) and starts
// certmagic's cache maintenance (renewals); Close stops it.
func New(cfg Config, deps Deps) (*Manager, error) {
	if deps.Storage == nil || deps.Hosts == nil {
		panic("certs.New: nil dependency")
	}
	if cfg.CA == "" {
		cfg.CA = LetsEncrypt
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: cfg, deps: deps, log: cfg.Logger.With("component", "certs")}
	if (cfg.WildcardCert == "") != (cfg.WildcardKey == "") {
		return nil, errors.New("certs: a wildcard certificate needs both its cert and key files")
	}
	if cfg.WildcardCert != "" {
		c, err := tls.LoadX509KeyPair(cfg.WildcardCert, cfg.WildcardKey)
		if err != nil {
			return nil, fmt.Errorf("certs: wildcard certificate: %w", err)
		}
		m.wildcard = &c // Leaf is parsed by LoadX509KeyPair
	}
	zl := zap.New(newZapCore(m.log))
	var magic *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             zl,
	})
	magic = certmagic.New(m.cache, certmagic.Config{
		Storage: deps.Storage,
		OnDemand: &certmagic.OnDemandConfig{DecisionFunc: func(_ context.Context, name string) error {
			if m.deps.Hosts.Verified(name) {
				return nil
			}
			return fmt.Errorf("%s is not a verified domain of this Pier", name)
		}},
		// Let's Encrypt ended OCSP; pebble never had it.
		OCSP:   certmagic.OCSPConfig{DisableStapling: true},
		Logger: zl,
	})
	iss := certmagic.ACMEIssuer{CA: cfg.CA, TestCA: cfg.CA, Email: cfg.Email, Agreed: true,
		TrustedRoots: cfg.CARoots, Logger: zl}
	if host, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil {
		iss.ListenHost = host
		iss.AltHTTPPort, _ = strconv.Atoi(port)
	}
	if _, port, err := net.SplitHostPort(cfg.HTTPSAddr); err == nil {
		iss.AltTLSALPNPort, _ = strconv.Atoi(port)
	}
	m.issuer = certmagic.NewACMEIssuer(magic, iss)
	magic.Issuers = []certmagic.Issuer{m.issuer}
	m.magic = magic
	return m, nil
}

// Close stops renewals.
func (m *Manager) Close() { m.cache.Stop() }

// TLSConfig is the HTTPS listener's: SNI picks the wildcard certificate
// when it covers the name, else the domain's ACME certificate (obtained
// on demand, under the storage lock, for verified domains only).
func (m *Manager) TLSConfig() *tls.Config {
	tc := m.magic.TLSConfig()
	get := tc.GetCertificate
	tc.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if m.covers(hello.ServerName) && !acmeChallenge(hello) {
			return m.wildcard, nil
		}
		c, err := get(hello)
		if err != nil {
			m.log.Debug("no certificate", "host", hello.ServerName, "err", err)
		}
		return c, err
	}
	tc.NextProtos = append([]string{"h2", "http/1.1"}, tc.NextProtos...)
	tc.MinVersion = tls.VersionTLS12
	return tc
}

func acmeChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == "acme-tls/1"
}

// covers reports whether the operator's wildcard certificate is valid for
// host.
func (m *Manager) covers(host string) bool {
	return m.wildcard != nil && m.wildcard.Leaf != nil && host != "" && m.wildcard.Leaf.VerifyHostname(host) == nil
}

// HTTPHandler wraps the edge's plain HTTP handler: ACME HTTP-01 challenges
// are answered (from the shared storage, whichever edge started them),
// and requests for verified domains are redirected to HTTPS (308, method
// and body kept); everything else goes to next.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	_, httpsPort, _ := net.SplitHostPort(m.cfg.HTTPSAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.issuer.HandleHTTPChallenge(w, r) {
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if m.deps.Hosts.Verified(host) {
			if certmagic.LooksLikeHTTPChallenge(r) { // never redirected: no such challenge
				http.NotFound(w, r)
				return
			}
			target := "https://" + host
			if httpsPort != "" && httpsPort != "443" {
				target += ":" + httpsPort
			}
			http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Storage is where certificates, keys and ACME state are kept
// (certmagic's port).
type Storage = certmagic.Storage

// FileStorage keeps certificates in a directory (the embedded mode's data
// dir), with lock files for issuance.
func FileStorage(dir string) Storage { return &certmagic.FileStorage{Path: dir} }
