// Package domains is the custom-domain workflow: a project claims a domain
// (pending, with a TXT challenge), proves it owns it and that it points at
// the edges (verify), and from then on every edge serves the project's
// production deployment at that name, over HTTPS with a certificate the
// edges obtain themselves (edge/certs).
//
// Verification asks a DNS server directly (miekg/dns, the only importer
// here), so the resolver is configurable and tests point it at an
// in-process server: the TXT record _pier-challenge.<domain> must hold the
// domain's token, and the domain must be a CNAME to the configured target
// (or to <project>.<base-domain>), or have A/AAAA records all among the
// edges' addresses.
//
// Imports: control. Declares the ports it calls: Store, Projects,
// Publisher. Used by control/api; wired by control/cmd/pier.
package domains

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
)

// DefaultPendingTTL is how long an unverified claim holds a domain.
const DefaultPendingTTL = 7 * 24 * time.Hour

// ChallengePrefix is the label the TXT challenge lives under:
// _pier-challenge.<domain>.
const ChallengePrefix = "_pier-challenge."

// Config is the workflow's settings.
type Config struct {
	// Resolver is the DNS server verification asks ("host:port", port 53
	// when left out); "" means the first nameserver of /etc/resolv.conf.
	Resolver string
	// BaseDomain is the edges' domain: a CNAME to <project>.<BaseDomain>
	// points at the edges, and names under it are never custom domains.
	BaseDomain string
	// CNAMETarget is a host name that points at the edges (e.g.
	// "edge.pier.example.com"); a CNAME to it is accepted. Optional.
	CNAMETarget string
	// EdgeAddrs are the edges' public IP addresses: a domain whose A/AAAA
	// records are all among them points at the edges.
	EdgeAddrs []string
	// Timeout bounds each DNS query; default 5s.
	Timeout time.Duration
	// PendingTTL is how long a claim may stay unverified and still keep
	// the domain from other projects; default 7 days. An older pending
	// claim lapses when another project adds the domain, so nobody can
	// hold a name they cannot verify.
	PendingTTL time.Duration
	// Now is the clock (tests); default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Projects finds projects by ID or name.
type Projects interface {
	GetProject(ctx context.Context, idOrName string) (*control.Project, error)
}

// Publisher tells every edge which verified domain serves which project
// (edge/coord in production and embedded mode alike).
type Publisher interface {
	PublishDomain(ctx context.Context, domain, projectID, projectName string) error
	UnpublishDomain(ctx context.Context, domain string) error
	// PublishedDomains lists the domains the edges serve.
	PublishedDomains(ctx context.Context) ([]string, error)
}

// Deps are the ports the service calls; all are required.
type Deps struct {
	Store     control.DomainStore
	Projects  Projects
	Publisher Publisher
}

// Service is the domain workflow.
type Service struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	resolver *resolver
	edges    map[string]bool
}

// New validates cfg and returns the service. It does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Store == nil || deps.Projects == nil || deps.Publisher == nil {
		panic("domains.New: nil dependency")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.PendingTTL <= 0 {
		cfg.PendingTTL = DefaultPendingTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.BaseDomain = normalize(cfg.BaseDomain)
	cfg.CNAMETarget = normalize(cfg.CNAMETarget)
	s := &Service{cfg: cfg, deps: deps, log: cfg.Logger.With("component", "domains"), edges: map[string]bool{}}
	for _, a := range cfg.EdgeAddrs {
		ip := net.ParseIP(strings.TrimSpace(a))
		if ip == nil {
			return nil, fmt.Errorf("domains: edge address %q is not an IP address", a)
		}
		s.edges[ip.String()] = true
	}
	r, err := newResolver(cfg.Resolver, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	s.resolver = r
	return s, nil
}

// ClaimError is a domain another project holds: Code is "domain_taken"
// when it is verified there, "domain_claimed" while it is pending there,
// "domain_exists" when this project already has it. It wraps
// control.ErrConflict.
type ClaimError struct {
	Code    string
	Message string
}

func (e *ClaimError) Error() string { return e.Message }
func (e *ClaimError) Unwrap() error { return control.ErrConflict }

// CheckError is a verification that did not pass, with a reason the user
// can act on. Codes: "txt_missing", "txt_mismatch", "not_pointing"
// (points elsewhere or nowhere), "dns_failed" (the resolver did not
// answer).
type CheckError struct {
	Code    string
	Message string
}

func (e *CheckError) Error() string { return e.Message }

// Add claims name for a project: pending, with a fresh token.
func (s *Service) Add(ctx context.Context, project, name string) (*control.Domain, error) {
	p, err := s.deps.Projects.GetProject(ctx, project)
	if err != nil {
		return nil, err
	}
	name, err = s.validName(name)
	if err != nil {
		return nil, err
	}
	d := &control.Domain{Name: name, ProjectID: p.ID, Token: newToken(), State: control.DomainPending, CreatedAt: s.cfg.Now()}
	err = s.deps.Store.CreateDomain(ctx, d)
	if errors.Is(err, control.ErrConflict) {
		// Another project's claim that nobody verified within PendingTTL
		// lapses now (only if it is still pending and that old), once.
		lapsed, lerr := s.deps.Store.DeleteStaleDomain(ctx, name, s.cfg.Now().Add(-s.cfg.PendingTTL))
		if lerr != nil {
			return nil, lerr
		}
		if lapsed {
			s.log.Info("domain claim lapsed: unverified too long", "host", name, "pending_ttl", s.cfg.PendingTTL)
			err = s.deps.Store.CreateDomain(ctx, d)
		}
	}
	if err != nil {
		if errors.Is(err, control.ErrConflict) {
			return nil, s.claimError(ctx, p.ID, name, err)
		}
		return nil, err
	}
	s.log.Info("domain added", "project", p.ID, "host", name)
	return d, nil
}

// claimError explains a conflicting claim of name.
func (s *Service) claimError(ctx context.Context, projectID, name string, cause error) error {
	d, err := s.deps.Store.GetDomain(ctx, name)
	switch {
	case err != nil:
		return cause // deleted meanwhile: the plain conflict
	case d.ProjectID == projectID:
		return &ClaimError{Code: "domain_exists", Message: fmt.Sprintf("domain %s is already added to this project", name)}
	case d.State == control.DomainVerified:
		return &ClaimError{Code: "domain_taken", Message: fmt.Sprintf("domain %s is verified by another project and cannot be taken over; its owner must remove it first", name)}
	default:
		return &ClaimError{Code: "domain_claimed", Message: fmt.Sprintf("domain %s is claimed by another project (pending verification); "+
			"an unverified claim lapses %s after it was made (at %s)", name, durationWords(s.cfg.PendingTTL),
			d.CreatedAt.Add(s.cfg.PendingTTL).UTC().Format(time.RFC3339))}
	}
}

// Domains lists a project's domains.
func (s *Service) Domains(ctx context.Context, project string) ([]*control.Domain, error) {
	p, err := s.deps.Projects.GetProject(ctx, project)
	if err != nil {
		return nil, err
	}
	return s.deps.Store.ListDomains(ctx, p.ID)
}

// Domain returns one of a project's domains.
func (s *Service) Domain(ctx context.Context, project, name string) (*control.Domain, *control.Project, error) {
	p, err := s.deps.Projects.GetProject(ctx, project)
	if err != nil {
		return nil, nil, err
	}
	name = normalize(name)
	d, err := s.deps.Store.GetDomain(ctx, name)
	if err == nil && d.ProjectID != p.ID {
		err = fmt.Errorf("domain %q: %w", name, control.ErrNotFound) // another project's: not this one's business
	}
	if err != nil {
		return nil, nil, err
	}
	return d, p, nil
}

// Verify checks a pending domain's DNS and, when it passes, marks it
// verified and publishes it to the edges, which then serve the project's
// current production deployment at it. A failed check returns a
// *CheckError and changes nothing. Verifying a verified domain checks
// again and publishes again (a repair after a lost route).
func (s *Service) Verify(ctx context.Context, project, name string) (*control.Domain, error) {
	d, p, err := s.Domain(ctx, project, name)
	if err != nil {
		return nil, err
	}
	if cerr := s.Check(ctx, d.Name, d.Token, p.Name); cerr != nil {
		s.log.Info("domain verification failed", "project", p.ID, "host", d.Name, "reason", cerr.Code)
		return nil, cerr
	}
	if d.State != control.DomainVerified {
		if err := s.deps.Store.MarkDomainVerified(ctx, p.ID, d.Name, time.Now()); err != nil {
			return nil, err
		}
	}
	if err := s.deps.Publisher.PublishDomain(ctx, d.Name, p.ID, p.Name); err != nil {
		return nil, fmt.Errorf("publish domain %s to the edges: %w", d.Name, err)
	}
	s.log.Info("domain verified", "project", p.ID, "host", d.Name)
	d, err = s.deps.Store.GetDomain(ctx, d.Name)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Delete removes a project's domain and stops the edges serving it.
func (s *Service) Delete(ctx context.Context, project, name string) error {
	d, p, err := s.Domain(ctx, project, name)
	if err != nil {
		return err
	}
	// Unpublish first: a domain must never be served without its row.
	if err := s.deps.Publisher.UnpublishDomain(ctx, d.Name); err != nil {
		return fmt.Errorf("unpublish domain %s: %w", d.Name, err)
	}
	return s.deps.Store.DeleteDomain(ctx, p.ID, d.Name)
}

// Sync makes the edges' table of domains match the store: every verified
// domain published with its project, and nothing else (the domains of a
// deleted project go with it).
func (s *Service) Sync(ctx context.Context) error {
	ds, err := s.deps.Store.ListDomains(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	want := map[string]bool{}
	for _, d := range ds {
		if d.State != control.DomainVerified {
			continue
		}
		p, err := s.deps.Projects.GetProject(ctx, d.ProjectID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want[d.Name] = true
		if err := s.deps.Publisher.PublishDomain(ctx, d.Name, p.ID, p.Name); err != nil {
			errs = append(errs, err)
		}
	}
	published, err := s.deps.Publisher.PublishedDomains(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, name := range published {
		if want[name] {
			continue
		}
		// Verified since the list was read (a concurrent Verify): keep it.
		if d, err := s.deps.Store.GetDomain(ctx, name); err == nil && d.State == control.DomainVerified {
			continue
		}
		s.log.Info("domain unpublished: no longer verified in the store", "host", name)
		if err := s.deps.Publisher.UnpublishDomain(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run syncs at once, then every interval (a minute when <= 0), until ctx
// ends: domains of deleted projects stop being served within an interval.
func (s *Service) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sync domains to the edges", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// validName normalises a domain name and rejects what cannot be a custom
// domain.
func (s *Service) validName(raw string) (string, error) {
	name := normalize(raw)
	switch {
	case name == "":
		return "", control.Invalid("name", "a domain name is required")
	case strings.HasPrefix(name, "*."):
		return "", control.Invalid("name", "wildcard domains are not supported; add each host name")
	case net.ParseIP(name) != nil:
		return "", control.Invalid("name", "%q is an IP address, not a domain name", raw)
	case len(name) > 253:
		return "", control.Invalid("name", "a domain name has at most 253 characters")
	case !strings.Contains(name, "."):
		return "", control.Invalid("name", "%q is not a fully qualified domain name (like www.example.com)", raw)
	case s.cfg.BaseDomain != "" && (name == s.cfg.BaseDomain || strings.HasSuffix(name, "."+s.cfg.BaseDomain)):
		return "", control.Invalid("name", "names under %s are Pier's own; add a domain you own", s.cfg.BaseDomain)
	}
	for _, l := range strings.Split(name, ".") {
		if !validLabel(l) {
			return "", control.Invalid("name", "%q is not a valid domain name: label %q (letters, digits and inner hyphens, at most 63)", raw, l)
		}
	}
	return name, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// normalize lowercases a host name and drops a trailing dot and spaces.
func normalize(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

func newToken() string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return "pier-verify=" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// Record is a DNS record a user sets for a domain.
type Record struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Records are the DNS records that verify d for the project named
// projectName: the TXT challenge, then the ways to point it at the edges.
func (s *Service) Records(d *control.Domain, projectName string) []Record {
	out := []Record{{Type: "TXT", Name: ChallengePrefix + d.Name, Value: d.Token}}
	switch {
	case s.cfg.CNAMETarget != "":
		out = append(out, Record{Type: "CNAME", Name: d.Name, Value: s.cfg.CNAMETarget})
	case s.cfg.BaseDomain != "" && projectName != "":
		out = append(out, Record{Type: "CNAME", Name: d.Name, Value: strings.ToLower(projectName) + "." + s.cfg.BaseDomain})
	}
	ips := make([]string, 0, len(s.edges))
	for ip := range s.edges {
		ips = append(ips, ip)
	}
	slices.Sort(ips)
	for _, ip := range ips {
		typ := "A"
		if net.ParseIP(ip).To4() == nil {
			typ = "AAAA"
		}
		out = append(out, Record{Type: typ, Name: d.Name, Value: ip})
	}
	return out
}

// durationWords says d in days or hours when it is a whole number of them.
func durationWords(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}
