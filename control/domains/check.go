package domains

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// resolver asks one DNS server directly: UDP, then TCP when the answer is
// truncated.
type resolver struct {
	addr    string
	timeout time.Duration
}

func newResolver(addr string, timeout time.Duration) (*resolver, error) {
	if addr == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cc.Servers) == 0 {
			return nil, fmt.Errorf("domains: no resolver configured and none found in /etc/resolv.conf: %v", err)
		}
		addr = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "53")
	}
	return &resolver{addr: addr, timeout: timeout}, nil
}

// query returns the answer section for (name, qtype); a name that does not
// exist is an empty answer, not an error.
func (r *resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	c := &dns.Client{Timeout: r.timeout}
	in, _, err := c.ExchangeContext(ctx, m, r.addr)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, r.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], name, err)
	}
	switch in.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return in.Answer, nil
	default:
		return nil, fmt.Errorf("%s %s: the resolver answered %s", dns.TypeToString[qtype], name, dns.RcodeToString[in.Rcode])
	}
}

// Check runs the DNS checks of a domain: the TXT challenge holds token, and
// the domain points at the edges. nil means verified.
func (s *Service) Check(ctx context.Context, name, token, projectName string) *CheckError {
	failed := func(err error) *CheckError {
		s.log.Warn("dns lookup failed", "host", name, "resolver", s.resolver.addr, "err", err)
		return &CheckError{Code: "dns_failed", Message: fmt.Sprintf("could not look up %s: the DNS server did not answer; try again shortly", name)}
	}
	challenge := ChallengePrefix + name
	rrs, err := s.resolver.query(ctx, challenge, dns.TypeTXT)
	if err != nil {
		return failed(err)
	}
	var values []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			values = append(values, strings.Join(t.Txt, ""))
		}
	}
	switch {
	case len(values) == 0:
		return &CheckError{Code: "txt_missing", Message: fmt.Sprintf("no TXT record at %s: add one with the value %q", challenge, token)}
	case !slices.Contains(values, token):
		return &CheckError{Code: "txt_mismatch", Message: fmt.Sprintf("the TXT record at %s holds %q, not this domain's token: set it to %q", challenge, values, token)}
	}

	targets := []string{}
	if s.cfg.CNAMETarget != "" {
		targets = append(targets, s.cfg.CNAMETarget)
	}
	if s.cfg.BaseDomain != "" && projectName != "" {
		targets = append(targets, strings.ToLower(projectName)+"."+s.cfg.BaseDomain)
	}
	rrs, err = s.resolver.query(ctx, name, dns.TypeCNAME)
	if err != nil {
		return failed(err)
	}
	var cname string
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok && normalize(c.Hdr.Name) == name {
			cname = normalize(c.Target)
		}
	}
	if cname != "" && slices.Contains(targets, cname) {
		return nil
	}

	var addrs, elsewhere []string
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := s.resolver.query(ctx, name, qt)
		if err != nil {
			return failed(err)
		}
		for _, rr := range rrs {
			var ip net.IP
			switch a := rr.(type) {
			case *dns.A:
				ip = a.A
			case *dns.AAAA:
				ip = a.AAAA
			default:
				continue
			}
			addrs = append(addrs, ip.String())
			if !s.edges[ip.String()] {
				elsewhere = append(elsewhere, ip.String())
			}
		}
	}
	if len(addrs) > 0 && len(elsewhere) == 0 {
		return nil
	}
	want := s.pointHint(targets)
	switch {
	case cname != "":
		return &CheckError{Code: "not_pointing", Message: fmt.Sprintf("%s is a CNAME to %s, which is not Pier's edges: %s", name, cname, want)}
	case len(elsewhere) > 0:
		return &CheckError{Code: "not_pointing", Message: fmt.Sprintf("%s resolves to %s, which is not a Pier edge: %s", name, strings.Join(elsewhere, ", "), want)}
	default:
		return &CheckError{Code: "not_pointing", Message: fmt.Sprintf("%s has no CNAME, A or AAAA record: %s", name, want)}
	}
}

// pointHint says what records would point a domain at the edges.
func (s *Service) pointHint(targets []string) string {
	var ways []string
	if len(targets) > 0 {
		ways = append(ways, "a CNAME to "+strings.Join(targets, " or "))
	}
	if len(s.edges) > 0 {
		ips := make([]string, 0, len(s.edges))
		for ip := range s.edges {
			ips = append(ips, ip)
		}
		slices.Sort(ips)
		ways = append(ways, "A/AAAA records to "+strings.Join(ips, ", "))
	}
	if len(ways) == 0 {
		return "no edge target is configured (domains.cname_target, domains.edge_addresses)"
	}
	return "set " + strings.Join(ways, ", or ")
}
