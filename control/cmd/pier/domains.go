package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/config"
	"github.com/pierhq/pier/control/domains"
	"github.com/pierhq/pier/edge/certs"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/hosts"
)

// domainPublisher adapts the coordination protocol to the domain
// workflow's Publisher port.
type domainPublisher struct{ c *coord.Coordinator }

var _ domains.Publisher = domainPublisher{}

func (p domainPublisher) PublishDomain(ctx context.Context, domain, projectID, projectName string) error {
	return p.c.PutDomain(ctx, coord.DomainRoute{Domain: domain, ProjectID: projectID, ProjectName: projectName})
}

func (p domainPublisher) UnpublishDomain(ctx context.Context, domain string) error {
	return p.c.DeleteDomain(ctx, domain)
}

func (p domainPublisher) PublishedDomains(ctx context.Context) ([]string, error) {
	rs, err := p.c.Domains(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Domain)
	}
	return out, nil
}

// newDomains builds the custom-domain workflow. Its Run keeps the edges'
// table following the store.
func newDomains(rt *config.Runtime, store control.Store, c *coord.Coordinator, logger *slog.Logger) (*domains.Service, error) {
	svc, err := domains.New(domains.Config{
		Resolver: rt.Domains.Resolver, BaseDomain: rt.Control.BaseDomain, CNAMETarget: rt.Domains.CNAMETarget,
		EdgeAddrs: rt.Domains.EdgeAddresses, PendingTTL: rt.DomainPendingTTL, Logger: logger,
	}, domains.Deps{Store: store, Projects: store, Publisher: domainPublisher{c}})
	if err != nil {
		return nil, err
	}
	return svc, nil
}

// edgeTLS is what every edge of the process shares for HTTPS: the table
// of verified domains and the certificate storage.
type edgeTLS struct {
	table   *hosts.Table
	storage certs.Storage
	roots   *x509.CertPool
}

// newEdgeTLS picks the certificate storage: the coordination KV when it
// is Consul (shared by every edge machine), else the data dir.
func newEdgeTLS(rt *config.Runtime, b *backends) (*edgeTLS, error) {
	t := &edgeTLS{table: &hosts.Table{}}
	if b.consul != nil {
		t.storage = certs.NewKVStorage(b.kv)
	} else {
		t.storage = certs.FileStorage(filepath.Join(rt.DataDir, "certs"))
	}
	if rt.TLS.ACMECARoot != "" {
		pem, err := os.ReadFile(rt.TLS.ACMECARoot)
		if err != nil {
			return nil, fmt.Errorf("tls.acme_ca_root: %w", err)
		}
		t.roots = x509.NewCertPool()
		if !t.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.acme_ca_root: %s holds no PEM certificate", rt.TLS.ACMECARoot)
		}
	}
	return t, nil
}

// manager builds one edge's certificate manager.
func (t *edgeTLS) manager(rt *config.Runtime, httpAddr, httpsAddr string, logger *slog.Logger) (*certs.Manager, error) {
	return certs.New(certs.Config{
		CA: rt.TLS.ACMECA, CARoots: t.roots, Email: rt.TLS.ACMEEmail,
		WildcardCert: rt.TLS.WildcardCert, WildcardKey: rt.TLS.WildcardKey,
		HTTPAddr: httpAddr, HTTPSAddr: httpsAddr, Logger: logger,
	}, certs.Deps{Storage: t.storage, Hosts: t.table})
}

// tlsFlags are `pier dev`'s HTTPS and custom-domain flags.
type tlsFlags struct {
	httpsAddr, acmeCA, acmeCARoot, acmeEmail *string
	wildcardCert, wildcardKey                *string
	resolver, cnameTarget, edgeIPs           *string
}

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	return &tlsFlags{
		httpsAddr:    fs.String("https-addr", "", "first edge's HTTPS listen address (custom domains, wildcard certificate); \"\" turns HTTPS off"),
		acmeCA:       fs.String("acme-ca", config.LetsEncrypt, "ACME directory URL certificates of verified custom domains come from"),
		acmeCARoot:   fs.String("acme-ca-root", "", "PEM file of roots trusted for the ACME CA's own HTTPS (a private CA such as pebble)"),
		acmeEmail:    fs.String("acme-email", "", "contact address of the ACME account"),
		wildcardCert: fs.String("wildcard-cert", "", "PEM certificate for *.<base-domain> (project and preview hosts)"),
		wildcardKey:  fs.String("wildcard-key", "", "PEM key of --wildcard-cert"),
		resolver:     fs.String("dns-resolver", "", "DNS server (host:port) custom domains are verified against (default: /etc/resolv.conf)"),
		cnameTarget:  fs.String("cname-target", "", "host name custom domains may CNAME to (besides <project>.<base-domain>)"),
		edgeIPs:      fs.String("edge-ips", "127.0.0.1,::1", "the edges' IP addresses custom domains' A/AAAA records may point at"),
	}
}

func (f *tlsFlags) apply(cfg *config.Config) {
	cfg.Edge.HTTPSListen = *f.httpsAddr
	cfg.TLS = &config.TLS{ACMECA: *f.acmeCA, ACMECARoot: *f.acmeCARoot, ACMEEmail: *f.acmeEmail,
		WildcardCert: *f.wildcardCert, WildcardKey: *f.wildcardKey}
	cfg.Domains = &config.Domains{Resolver: *f.resolver, CNAMETarget: *f.cnameTarget}
	if *f.edgeIPs != "" {
		cfg.Domains.EdgeAddresses = strings.Split(*f.edgeIPs, ",")
	}
}
