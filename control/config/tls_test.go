package config

import (
	"slices"
	"strings"
	"testing"
)

// TestTLSAndDomains: the HTTPS and custom-domain settings from the file
// and PIER_* variables, with their defaults.
func TestTLSAndDomains(t *testing.T) {
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = t.TempDir()
	rt, err := c.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	if rt.TLS.ACMECA != LetsEncrypt || rt.Edge.HTTPSListen != "" || rt.Domains.Resolver != "" {
		t.Errorf("defaults: tls %+v https %q domains %+v", rt.TLS, rt.Edge.HTTPSListen, rt.Domains)
	}

	path := write(t, `
data_dir = "/var/lib/pier"
edge { https_listen = "0.0.0.0:443" }
tls {
  acme_ca       = "https://ca.internal/dir"
  acme_email    = "ops@example.com"
  wildcard_cert = "/etc/pier/wild.crt"
  wildcard_key  = "/etc/pier/wild.key"
}
domains {
  cname_target   = "edge.pier.example.com"
  edge_addresses = ["203.0.113.10", "2001:db8::10"]
  pending_ttl    = "72h"
}
`)
	c, err = Load(path, env(map[string]string{"PIER_DNS_RESOLVER": "10.0.0.2:53", "PIER_ACME_CA_ROOT": "/etc/pier/ca.pem"}))
	if err != nil {
		t.Fatal(err)
	}
	rt, err = c.Runtime()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"https listen", rt.Edge.HTTPSListen, "0.0.0.0:443"},
		{"acme ca", rt.TLS.ACMECA, "https://ca.internal/dir"},
		{"acme ca root from env", rt.TLS.ACMECARoot, "/etc/pier/ca.pem"},
		{"email", rt.TLS.ACMEEmail, "ops@example.com"},
		{"wildcard", rt.TLS.WildcardCert + " " + rt.TLS.WildcardKey, "/etc/pier/wild.crt /etc/pier/wild.key"},
		{"resolver from env", rt.Domains.Resolver, "10.0.0.2:53"},
		{"cname target", rt.Domains.CNAMETarget, "edge.pier.example.com"},
		{"pending ttl", rt.DomainPendingTTL.String(), "72h0m0s"},
		{"flat hosts with a wildcard certificate", rt.Control.HostStyle, "flat"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if !slices.Equal(rt.Domains.EdgeAddresses, []string{"203.0.113.10", "2001:db8::10"}) {
		t.Errorf("edge addresses: %v", rt.Domains.EdgeAddresses)
	}

	c, _ = Load("", env(map[string]string{"PIER_EDGE_ADDRESSES": "198.51.100.1, 198.51.100.2", "PIER_EDGE_HTTPS_LISTEN": ":8443"}))
	c.DataDir = t.TempDir()
	if rt, err = c.Runtime(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rt.Domains.EdgeAddresses, []string{"198.51.100.1", "198.51.100.2"}) || rt.Edge.HTTPSListen != ":8443" {
		t.Errorf("from env: %v %q", rt.Domains.EdgeAddresses, rt.Edge.HTTPSListen)
	}
	if rt.FlatHosts() {
		t.Error("flat hosts without a wildcard certificate or host_style")
	}
	c, _ = Load("", env(map[string]string{"PIER_HOST_STYLE": "flat"}))
	c.DataDir = t.TempDir()
	if rt, err = c.Runtime(); err != nil || !rt.FlatHosts() {
		t.Errorf("PIER_HOST_STYLE=flat: %v, flat %v", err, rt != nil && rt.FlatHosts())
	}
}

func TestTLSInvalid(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"https listen", `edge { https_listen = "443" }`, "edge.https_listen"},
		{"acme ca not https", `tls { acme_ca = "http://ca/dir" }`, "tls.acme_ca"},
		{"wildcard cert alone", `tls { wildcard_cert = "/c.pem" }`, "go together"},
		{"edge address", `domains { edge_addresses = ["edge.example.com"] }`, "not an IP address"},
		{"pending ttl", `domains { pending_ttl = "a week" }`, "domains.pending_ttl"},
		{"host style", `control { host_style = "deep" }`, "control.host_style"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(t, "data_dir = \"/tmp/x\"\n"+tt.src), env(nil))
			if err == nil {
				_, err = c.Runtime()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
