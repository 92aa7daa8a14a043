// Package config is the user configuration of the pier binary: an HCL file,
// then PIER_* environment variables over it, then defaults. The rule for
// backends is k3s's: a section left out (or an empty address) means the
// embedded twin — SQLite, local disk, the local keyring, single-node raft,
// local builds — so the same file format runs a laptop and a fleet.
//
//	data_dir  = "/var/lib/pier"
//	roles     = ["control", "edge"]
//	control { listen = "0.0.0.0:7070"  base_domain = "pier.example.com" }
//	edge    { listen = "0.0.0.0:8080" }
//	postgres { dsn = "postgres://pier@db/pier" }
//	s3      { endpoint = "https://s3.example.com"  bucket = "pier" }
//	vault   { address = "https://vault:8200" }
//	consul  { address = "http://127.0.0.1:8500" }
//	nomad   { address = "http://nomad:4646"  driver = "docker" }
//	schedules { timer = "nomad"  control_url = "http://control.service.consul:7070" }
//
// Secrets (tokens, keys) are best given through the environment
// (PIER_VAULT_TOKEN or VAULT_TOKEN, PIER_S3_SECRET_KEY, ...).
//
// Imports: the standard library and the HCL library only.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclsimple"
)

// Config is the whole file.
type Config struct {
	DataDir        string   `hcl:"data_dir,optional"`
	LogLevel       string   `hcl:"log_level,optional"`
	Roles          []string `hcl:"roles,optional"` // "control", "edge"
	BootstrapToken string   `hcl:"bootstrap_token,optional"`

	Control  *Control  `hcl:"control,block"`
	Edge     *Edge     `hcl:"edge,block"`
	Postgres *Postgres `hcl:"postgres,block"`
	S3       *S3       `hcl:"s3,block"`
	Vault    *Vault    `hcl:"vault,block"`
	Consul   *Consul   `hcl:"consul,block"`
	Nomad    *Nomad    `hcl:"nomad,block"`
	TLS      *TLS      `hcl:"tls,block"`
	Domains  *Domains  `hcl:"domains,block"`

	Schedules *Schedules `hcl:"schedules,block"`
}

// Schedules says what times scheduled functions (docs/functions.md).
type Schedules struct {
	// Timer is "builtin" (default: control's leader-locked scheduler) or
	// "nomad": one Nomad periodic job per schedule, which calls control's
	// run endpoint (needs the nomad block).
	Timer string `hcl:"timer,optional"`
	// ControlURL is where the periodic jobs' tasks reach control's API
	// (an advertised address, e.g. http://control.service.consul:7070).
	ControlURL string `hcl:"control_url,optional"`
	// TokenKey signs each job's bearer token (an HMAC per schedule, which
	// opens only that schedule's run endpoint); every control needs the
	// same value. Best given as PIER_SCHEDULES_TOKEN_KEY.
	TokenKey string `hcl:"token_key,optional"`
	// Driver runs curl: docker, exec or raw_exec; default nomad.driver.
	Driver string `hcl:"driver,optional"`
	// Image is a docker image with curl (docker driver).
	Image string `hcl:"image,optional"`
	// CurlPath is curl on the client nodes (exec, raw_exec); default
	// /usr/bin/curl.
	CurlPath string `hcl:"curl_path,optional"`
	// NodePool and Datacenters place the calls; default nomad.node_pool
	// and nomad.datacenters.
	NodePool    string   `hcl:"node_pool,optional"`
	Datacenters []string `hcl:"datacenters,optional"`
}

// TLS is the edges' HTTPS: certificates for verified custom domains from
// an ACME CA, and an operator-supplied wildcard certificate for the base
// domain (docs/domains.md).
type TLS struct {
	// ACMECA is the ACME directory URL; default Let's Encrypt.
	ACMECA string `hcl:"acme_ca,optional"`
	// ACMECARoot is a PEM file of roots trusted for the CA's own HTTPS
	// (a private CA); default the system roots.
	ACMECARoot string `hcl:"acme_ca_root,optional"`
	ACMEEmail  string `hcl:"acme_email,optional"`
	// WildcardCert and WildcardKey are PEM files of a certificate for
	// *.<base_domain> (and any other names it lists).
	WildcardCert string `hcl:"wildcard_cert,optional"`
	WildcardKey  string `hcl:"wildcard_key,optional"`
}

// Domains is how custom domains are verified.
type Domains struct {
	// Resolver is the DNS server asked ("host:port"); default the first
	// nameserver of /etc/resolv.conf.
	Resolver string `hcl:"resolver,optional"`
	// CNAMETarget is a host name pointing at the edges that custom domains
	// may CNAME to (besides <project>.<base_domain>).
	CNAMETarget string `hcl:"cname_target,optional"`
	// EdgeAddresses are the edges' public IPs, for A/AAAA records.
	EdgeAddresses []string `hcl:"edge_addresses,optional"`
	// PendingTTL is how long an unverified claim keeps a domain from
	// other projects (a duration like 168h, the default).
	PendingTTL string `hcl:"pending_ttl,optional"`
}

// Control is the control role.
type Control struct {
	Listen     string `hcl:"listen,optional"`
	BaseDomain string `hcl:"base_domain,optional"`
	EdgeScheme string `hcl:"edge_scheme,optional"` // scheme of the URLs the API reports
	EdgePort   string `hcl:"edge_port,optional"`   // "" = the scheme's default
	// HostStyle is how deployment, stage and preview hosts are named:
	// "nested" (<label>.<project>.<base>) or "flat"
	// (<label>--<project>.<base>, one label deep, so a *.<base> wildcard
	// certificate covers them). Default flat with tls.wildcard_cert,
	// else nested. Edges route both forms either way.
	HostStyle    string `hcl:"host_style,optional"`
	Workers      int    `hcl:"workers,optional"`
	BuildTimeout string `hcl:"build_timeout,optional"`
	Sandbox      string `hcl:"sandbox,optional"` // local builds: auto, bwrap, none
	// ReadyTimeout bounds how long a cutover waits for every healthy edge
	// to confirm a deployment; default 60s.
	ReadyTimeout string `hcl:"ready_timeout,optional"`
	// DrainUnready: an edge that has not confirmed by the deadline is
	// drained out of the pool and the cutover proceeds without it. Off by
	// default: the cutover fails and the old deployment stays live.
	DrainUnready bool `hcl:"drain_unready,optional"`
	// GitHubAPIURL is where commit statuses go; default api.github.com
	// (set it for GitHub Enterprise).
	GitHubAPIURL string `hcl:"github_api_url,optional"`
	// FunctionsListen serves the functions API (POST /deploy,
	// /invoke/{id}, DELETE /delete/{id}, bearer token = the bootstrap
	// token) on this address; "" turns it off (pier dev: 127.0.0.1:8787).
	FunctionsListen string `hcl:"functions_listen,optional"`
	// TelemetryToken is the bearer token edges ship runtime logs and
	// metrics with (POST /v1/telemetry); edges set the same value as
	// edge.telemetry_token. Empty: a process running both roles makes a
	// random one for its own edges; separate edges cannot ship.
	TelemetryToken string `hcl:"telemetry_token,optional"`
	// TelemetryRetention is how long runtime logs and metrics are kept;
	// default 168h (7 days).
	TelemetryRetention string `hcl:"telemetry_retention,optional"`
}

// Edge is the edge role.
type Edge struct {
	ID       string `hcl:"id,optional"` // default: the host name
	Listen   string `hcl:"listen,optional"`
	CacheDir string `hcl:"cache_dir,optional"`
	// Isolates: SSR and functions (see docs/runtime.md).
	IsolateCapacity int    `hcl:"isolate_capacity,optional"` // default 64
	IsolateTimeout  string `hcl:"isolate_timeout,optional"`  // per request; default 30s
	IsolateHeapMB   int    `hcl:"isolate_heap_mb,optional"`  // default 128
	MinWarm         int    `hcl:"min_warm,optional"`         // per live deployment; default 0

	// HTTPSListen serves HTTPS (custom domains, the wildcard certificate)
	// on this address; "" turns HTTPS off.
	HTTPSListen string `hcl:"https_listen,optional"`
	// ControlURL is control's API, where the edge ships runtime logs and
	// metrics; "" in a process that also runs control means that control,
	// else no shipping.
	ControlURL     string `hcl:"control_url,optional"`
	TelemetryToken string `hcl:"telemetry_token,optional"` // = control.telemetry_token
	// TelemetryBuffer bounds the log records held between shipments
	// (default 10000); beyond it records are dropped and counted.
	TelemetryBuffer int `hcl:"telemetry_buffer,optional"`
}

// Postgres selects the PostgreSQL store.
type Postgres struct {
	DSN string `hcl:"dsn,optional"`
}

// S3 selects the S3 object store.
type S3 struct {
	Endpoint  string `hcl:"endpoint,optional"`
	Region    string `hcl:"region,optional"`
	Bucket    string `hcl:"bucket,optional"`
	Prefix    string `hcl:"prefix,optional"`
	AccessKey string `hcl:"access_key,optional"`
	SecretKey string `hcl:"secret_key,optional"`
}

// Vault selects Vault transit for secrets.
type Vault struct {
	Address string `hcl:"address,optional"`
	Token   string `hcl:"token,optional"`
	Mount   string `hcl:"mount,optional"`
	Key     string `hcl:"key,optional"`
	// CreateKey creates the transit key at start when it is missing (the
	// token then needs vault/pier-ops.hcl); off, a missing key is an error.
	CreateKey bool `hcl:"create_key,optional"`
}

// Consul selects Consul for coordination.
type Consul struct {
	Address    string `hcl:"address,optional"`
	Token      string `hcl:"token,optional"`
	Datacenter string `hcl:"datacenter,optional"`
	// Prefix puts Pier's keys (pier/...) under <prefix>/, so several Pier
	// installations can share one Consul.
	Prefix string `hcl:"prefix,optional"`
}

// Nomad selects Nomad for builds.
type Nomad struct {
	Address     string   `hcl:"address,optional"`
	Token       string   `hcl:"token,optional"`
	Region      string   `hcl:"region,optional"`
	Namespace   string   `hcl:"namespace,optional"`
	JobID       string   `hcl:"job_id,optional"`    // the build job's name; default pier-build
	Driver      string   `hcl:"driver,optional"`    // docker (default), exec, raw_exec
	Image       string   `hcl:"image,optional"`     // docker image holding pier, node and git
	PierPath    string   `hcl:"pier_path,optional"` // exec/raw_exec: the pier binary on the client nodes
	NodePool    string   `hcl:"node_pool,optional"` // builds never run on edge nodes
	Datacenters []string `hcl:"datacenters,optional"`
	CPU         int      `hcl:"cpu,optional"`
	MemoryMB    int      `hcl:"memory_mb,optional"`
}

// LetsEncrypt is the default ACME directory.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// Load reads path (if not empty), then applies the environment.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	c := &Config{}
	if path != "" {
		if err := hclsimple.DecodeFile(path, nil, c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	c.applyEnv(env)
	return c, nil
}

// applyEnv overrides fields from PIER_* variables (and the agents' own
// VAULT_TOKEN, CONSUL_HTTP_TOKEN, NOMAD_TOKEN as fallbacks for tokens).
func (c *Config) applyEnv(lookup func(string) (string, bool)) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	str := func(dst *string, names ...string) {
		for _, n := range names {
			if v, ok := lookup(n); ok && v != "" {
				*dst = v
				return
			}
		}
	}
	str(&c.DataDir, "PIER_DATA_DIR")
	str(&c.LogLevel, "PIER_LOG_LEVEL")
	str(&c.BootstrapToken, "PIER_BOOTSTRAP_TOKEN")
	if v, ok := lookup("PIER_ROLES"); ok && v != "" {
		c.Roles = strings.Split(v, ",")
	}
	// Per-instance settings, so one file can serve every node of a role.
	if c.Control == nil {
		c.Control = &Control{}
	}
	str(&c.Control.Listen, "PIER_CONTROL_LISTEN")
	str(&c.Control.BaseDomain, "PIER_BASE_DOMAIN")
	str(&c.Control.HostStyle, "PIER_HOST_STYLE")
	str(&c.Control.GitHubAPIURL, "PIER_GITHUB_API_URL")
	str(&c.Control.FunctionsListen, "PIER_FUNCTIONS_LISTEN")
	str(&c.Control.TelemetryToken, "PIER_TELEMETRY_TOKEN")
	if c.Edge == nil {
		c.Edge = &Edge{}
	}
	str(&c.Edge.ID, "PIER_EDGE_ID")
	str(&c.Edge.Listen, "PIER_EDGE_LISTEN")
	str(&c.Edge.CacheDir, "PIER_EDGE_CACHE_DIR")
	str(&c.Edge.HTTPSListen, "PIER_EDGE_HTTPS_LISTEN")
	if c.TLS == nil {
		c.TLS = &TLS{}
	}
	str(&c.TLS.ACMECA, "PIER_ACME_CA")
	str(&c.TLS.ACMECARoot, "PIER_ACME_CA_ROOT")
	str(&c.TLS.ACMEEmail, "PIER_ACME_EMAIL")
	if c.Domains == nil {
		c.Domains = &Domains{}
	}
	str(&c.Domains.Resolver, "PIER_DNS_RESOLVER")
	str(&c.Domains.CNAMETarget, "PIER_DOMAINS_CNAME_TARGET")
	if v, ok := lookup("PIER_EDGE_ADDRESSES"); ok && v != "" {
		c.Domains.EdgeAddresses = strings.Split(v, ",")
	}
	str(&c.Edge.ControlURL, "PIER_EDGE_CONTROL_URL")
	str(&c.Edge.TelemetryToken, "PIER_EDGE_TELEMETRY_TOKEN", "PIER_TELEMETRY_TOKEN")
	if v, ok := lookup("PIER_POSTGRES_DSN"); ok && v != "" {
		if c.Postgres == nil {
			c.Postgres = &Postgres{}
		}
		c.Postgres.DSN = v
	}
	if v, ok := lookup("PIER_S3_ENDPOINT"); ok && v != "" && c.S3 == nil {
		c.S3 = &S3{}
	}
	if c.S3 != nil {
		str(&c.S3.Endpoint, "PIER_S3_ENDPOINT")
		str(&c.S3.Region, "PIER_S3_REGION")
		str(&c.S3.Bucket, "PIER_S3_BUCKET")
		str(&c.S3.AccessKey, "PIER_S3_ACCESS_KEY")
		str(&c.S3.SecretKey, "PIER_S3_SECRET_KEY")
	}
	if v, ok := lookup("PIER_VAULT_ADDR"); ok && v != "" && c.Vault == nil {
		c.Vault = &Vault{}
	}
	if c.Vault != nil {
		str(&c.Vault.Address, "PIER_VAULT_ADDR")
		if c.Vault.Token == "" {
			str(&c.Vault.Token, "PIER_VAULT_TOKEN", "VAULT_TOKEN")
		}
	}
	if v, ok := lookup("PIER_CONSUL_ADDR"); ok && v != "" && c.Consul == nil {
		c.Consul = &Consul{}
	}
	if c.Consul != nil {
		str(&c.Consul.Address, "PIER_CONSUL_ADDR")
		if c.Consul.Token == "" {
			str(&c.Consul.Token, "PIER_CONSUL_TOKEN", "CONSUL_HTTP_TOKEN")
		}
	}
	if c.Schedules == nil {
		c.Schedules = &Schedules{}
	}
	str(&c.Schedules.Timer, "PIER_SCHEDULES_TIMER")
	str(&c.Schedules.ControlURL, "PIER_SCHEDULES_CONTROL_URL")
	str(&c.Schedules.TokenKey, "PIER_SCHEDULES_TOKEN_KEY")
	if v, ok := lookup("PIER_NOMAD_ADDR"); ok && v != "" && c.Nomad == nil {
		c.Nomad = &Nomad{}
	}
	if c.Nomad != nil {
		str(&c.Nomad.Address, "PIER_NOMAD_ADDR")
		if c.Nomad.Token == "" {
			str(&c.Nomad.Token, "PIER_NOMAD_TOKEN", "NOMAD_TOKEN")
		}
	}
}

// FlatHosts reports whether control names hosts <label>--<project>.<base>
// (control.host_style = "flat").
func (r *Runtime) FlatHosts() bool { return r.Control.HostStyle == "flat" }

// Runtime is a validated config with every default filled in.
type Runtime struct {
	DataDir        string
	LogLevel       string
	RunControl     bool
	RunEdge        bool
	BootstrapToken string

	Control        Control
	BuildTimeout   time.Duration
	ReadyTimeout   time.Duration
	IsolateTimeout time.Duration
	// TelemetryRetention is control.telemetry_retention parsed.
	TelemetryRetention time.Duration
	Edge               Edge
	TLS                TLS
	Domains            Domains
	// DomainPendingTTL is domains.pending_ttl parsed (0 = the default).
	DomainPendingTTL time.Duration

	// Nil means the embedded twin.
	Postgres *Postgres
	S3       *S3
	Vault    *Vault
	Consul   *Consul
	Nomad    *Nomad

	// Schedules is filled in: Timer "builtin" or "nomad" (then every
	// other field is set and checked).
	Schedules Schedules
}

// Runtime validates c and fills defaults.
func (c *Config) Runtime() (*Runtime, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	r := &Runtime{DataDir: c.DataDir, LogLevel: c.LogLevel, BootstrapToken: c.BootstrapToken}
	if r.DataDir == "" {
		r.DataDir = "/var/lib/pier"
	}
	if !filepath.IsAbs(r.DataDir) {
		abs, err := filepath.Abs(r.DataDir)
		if err != nil {
			bad("data_dir: %v", err)
		}
		r.DataDir = abs
	}
	if r.LogLevel == "" {
		r.LogLevel = "info"
	}
	roles := c.Roles
	if len(roles) == 0 {
		roles = []string{"control", "edge"}
	}
	for _, role := range roles {
		switch strings.TrimSpace(role) {
		case "control":
			r.RunControl = true
		case "edge":
			r.RunEdge = true
		default:
			bad("roles: unknown role %q (want control, edge)", role)
		}
	}

	if c.Control != nil {
		r.Control = *c.Control
	}
	if r.Control.Listen == "" {
		r.Control.Listen = "127.0.0.1:7070"
	}
	if r.Control.BaseDomain == "" {
		r.Control.BaseDomain = "localhost"
	}
	if r.Control.EdgeScheme == "" {
		r.Control.EdgeScheme = "http"
	}
	if r.Control.Workers <= 0 {
		r.Control.Workers = 2
	}
	if r.Control.Sandbox == "" {
		r.Control.Sandbox = "auto"
	}
	if !slices.Contains([]string{"auto", "bwrap", "none"}, r.Control.Sandbox) {
		bad("control.sandbox: %q (want auto, bwrap or none)", r.Control.Sandbox)
	}
	r.BuildTimeout = 15 * time.Minute
	if r.Control.BuildTimeout != "" {
		d, err := time.ParseDuration(r.Control.BuildTimeout)
		if err != nil || d <= 0 {
			bad("control.build_timeout: %q is not a duration like 15m", r.Control.BuildTimeout)
		}
		r.BuildTimeout = d
	}
	r.ReadyTimeout = time.Minute
	if r.Control.ReadyTimeout != "" {
		d, err := time.ParseDuration(r.Control.ReadyTimeout)
		if err != nil || d <= 0 {
			bad("control.ready_timeout: %q is not a duration like 60s", r.Control.ReadyTimeout)
		}
		r.ReadyTimeout = d
	}
	if _, _, err := net.SplitHostPort(r.Control.Listen); err != nil {
		bad("control.listen: %v", err)
	}
	r.TelemetryRetention = 7 * 24 * time.Hour
	if r.Control.TelemetryRetention != "" {
		d, err := time.ParseDuration(r.Control.TelemetryRetention)
		if err != nil || d <= 0 {
			bad("control.telemetry_retention: %q is not a duration like 168h", r.Control.TelemetryRetention)
		}
		r.TelemetryRetention = d
	}
	if t := r.Control.TelemetryToken; t != "" && len(t) < 24 {
		bad("control.telemetry_token: use at least 24 random characters")
	}

	if c.Edge != nil {
		r.Edge = *c.Edge
	}
	if r.Edge.ID == "" {
		host, _ := os.Hostname()
		r.Edge.ID = "edge-" + strings.ToLower(strings.SplitN(host, ".", 2)[0])
	}
	if r.Edge.Listen == "" {
		r.Edge.Listen = "127.0.0.1:8080"
	}
	if r.Edge.CacheDir == "" {
		r.Edge.CacheDir = filepath.Join(r.DataDir, "edges", r.Edge.ID)
	}
	r.IsolateTimeout = 30 * time.Second
	if r.Edge.IsolateTimeout != "" {
		d, err := time.ParseDuration(r.Edge.IsolateTimeout)
		if err != nil || d <= 0 {
			bad("edge.isolate_timeout: %q is not a duration like 30s", r.Edge.IsolateTimeout)
		}
		r.IsolateTimeout = d
	}
	if _, _, err := net.SplitHostPort(r.Edge.Listen); err != nil {
		bad("edge.listen: %v", err)
	}
	if u := r.Edge.ControlURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad("edge.control_url: %q is not an http(s) URL like https://control.example.com:7070", u)
		}
		if r.Edge.TelemetryToken == "" {
			bad("edge.telemetry_token: required with edge.control_url (the value of control.telemetry_token)")
		}
	}
	if r.Edge.TelemetryBuffer < 0 {
		bad("edge.telemetry_buffer: must not be negative")
	}

	if r.Edge.HTTPSListen != "" {
		if _, _, err := net.SplitHostPort(r.Edge.HTTPSListen); err != nil {
			bad("edge.https_listen: %v", err)
		}
	}
	if c.TLS != nil {
		r.TLS = *c.TLS
	}
	if r.TLS.ACMECA == "" {
		r.TLS.ACMECA = LetsEncrypt
	} else if !strings.HasPrefix(r.TLS.ACMECA, "https://") {
		bad("tls.acme_ca: %q is not an https:// ACME directory URL", r.TLS.ACMECA)
	}
	if (r.TLS.WildcardCert == "") != (r.TLS.WildcardKey == "") {
		bad("tls: wildcard_cert and wildcard_key go together")
	}
	switch r.Control.HostStyle {
	case "":
		r.Control.HostStyle = "nested"
		if r.TLS.WildcardCert != "" {
			r.Control.HostStyle = "flat"
		}
	case "nested", "flat":
	default:
		bad("control.host_style: %q (want nested or flat)", r.Control.HostStyle)
	}
	if c.Domains != nil {
		r.Domains = *c.Domains
	}
	if v := r.Domains.PendingTTL; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			bad("domains.pending_ttl: %q is not a duration like 168h", v)
		}
		r.DomainPendingTTL = d
	}
	for i, a := range r.Domains.EdgeAddresses {
		r.Domains.EdgeAddresses[i] = strings.TrimSpace(a)
		if net.ParseIP(r.Domains.EdgeAddresses[i]) == nil {
			bad("domains.edge_addresses: %q is not an IP address", a)
		}
	}

	if c.Postgres != nil && c.Postgres.DSN != "" {
		r.Postgres = c.Postgres
	}
	if c.S3 != nil && c.S3.Endpoint != "" {
		s := *c.S3
		if s.Bucket == "" {
			bad("s3.bucket: required with s3.endpoint")
		}
		if s.Region == "" {
			s.Region = "us-east-1"
		}
		r.S3 = &s
	}
	if c.Vault != nil && c.Vault.Address != "" {
		v := *c.Vault
		if v.Token == "" {
			bad("vault.token: required with vault.address (or set VAULT_TOKEN)")
		}
		if v.Mount == "" {
			v.Mount = "transit"
		}
		if v.Key == "" {
			v.Key = "pier"
		}
		r.Vault = &v
	}
	if c.Consul != nil && c.Consul.Address != "" {
		r.Consul = c.Consul
	}
	if c.Nomad != nil && c.Nomad.Address != "" {
		n := *c.Nomad
		if n.Driver == "" {
			n.Driver = "docker"
		}
		if !slices.Contains([]string{"docker", "exec", "raw_exec"}, n.Driver) {
			bad("nomad.driver: %q (want docker, exec or raw_exec)", n.Driver)
		}
		if n.Driver == "docker" && n.Image == "" {
			bad("nomad.image: required with the docker driver")
		}
		if n.Driver != "docker" && n.PierPath == "" {
			bad("nomad.pier_path: required with the %s driver", n.Driver)
		}
		if n.S3Required() && r.S3 == nil {
			bad("nomad: builds on Nomad upload to the object store, so an s3 section is required")
		}
		r.Nomad = &n
	}
	r.Schedules = c.schedules(r.Nomad, bad)
	// Processes that do not share memory must share coordination.
	if r.Consul == nil && !(r.RunControl && r.RunEdge) {
		bad("consul: required when control and edge run as separate processes (the embedded raft is single-process)")
	}
	if r.S3 == nil && !(r.RunControl && r.RunEdge) {
		bad("s3: required when control and edge run as separate processes (or on separate machines)")
	}
	return r, errors.Join(errs...)
}

// schedules validates the schedules block against the nomad one.
func (c *Config) schedules(n *Nomad, bad func(string, ...any)) Schedules {
	var s Schedules
	if c.Schedules != nil {
		s = *c.Schedules
	}
	switch s.Timer {
	case "", "builtin":
		s.Timer = "builtin"
		return s
	case "nomad":
	default:
		bad("schedules.timer: %q (want builtin or nomad)", s.Timer)
		return s
	}
	if n == nil {
		bad("schedules.timer: \"nomad\" needs the nomad block (nomad.address): Nomad runs the periodic jobs")
		return s
	}
	if pu, err := url.Parse(s.ControlURL); s.ControlURL == "" || err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		bad("schedules.control_url: %q is not an http(s) URL at which Nomad tasks reach control's API, like http://control.service.consul:7070", s.ControlURL)
	}
	if len(s.TokenKey) < 24 {
		bad("schedules.token_key: use at least 24 random characters (the same on every control; PIER_SCHEDULES_TOKEN_KEY)")
	}
	if s.Driver == "" {
		s.Driver = n.Driver
	}
	switch s.Driver {
	case "docker":
		if s.Image == "" {
			bad("schedules.image: required with the docker driver (an image with curl, e.g. docker.io/curlimages/curl:8.11.1)")
		}
		if s.CurlPath == "" {
			s.CurlPath = "/usr/bin/curl"
		}
	case "exec", "raw_exec":
		if s.Image != "" {
			bad("schedules.image: only the docker driver uses an image, not %s", s.Driver)
		}
		if s.CurlPath == "" {
			s.CurlPath = "/usr/bin/curl"
		}
	default:
		bad("schedules.driver: %q (want docker, exec or raw_exec)", s.Driver)
	}
	if !filepath.IsAbs(s.CurlPath) {
		bad("schedules.curl_path: %q is not an absolute path", s.CurlPath)
	}
	if s.NodePool == "" {
		s.NodePool = n.NodePool
	}
	if len(s.Datacenters) == 0 {
		s.Datacenters = n.Datacenters
	}
	return s
}

// S3Required reports whether Nomad builds need a shared object store: they
// run on other machines, so the local disk store cannot work.
func (n *Nomad) S3Required() bool { return true }
