// dns.go: an authoritative DNS server in process (miekg/dns) on a random
// loopback port, UDP and TCP, whose records tests set and change at will
// (TTL 0). Domain verification points its resolver at it, and pebble uses
// it (-dnsserver) to find where to validate challenges.

package testenv

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer answers A, AAAA, CNAME and TXT queries from its tables. A name
// it does not know is NXDOMAIN, except for A queries when DefaultA is set
// (pebble resolving any test domain to the edges on 127.0.0.1). A CNAME is
// followed for A/AAAA queries within the server's own tables.
type DNSServer struct {
	Addr string // "127.0.0.1:port", UDP and TCP

	mu       sync.Mutex
	a        map[string][]net.IP
	aaaa     map[string][]net.IP
	cname    map[string]string
	txt      map[string][]string
	defaultA net.IP
}

// DNS starts a server, stopped by t.Cleanup.
func DNS(t testing.TB) *DNSServer {
	t.Helper()
	s := &DNSServer{a: map[string][]net.IP{}, aaaa: map[string][]net.IP{}, cname: map[string]string{}, txt: map[string][]string{}}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 { // the same port for UDP and TCP
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("dns server: %v", err)
	}
	s.Addr = pc.LocalAddr().String()
	var wg sync.WaitGroup
	started := make(chan struct{}, 2)
	udp := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { started <- struct{}{} }}
	tcp := &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: func() { started <- struct{}{} }}
	wg.Go(func() { _ = udp.ActivateAndServe() })
	wg.Go(func() { _ = tcp.ActivateAndServe() })
	<-started
	<-started
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
		wg.Wait()
	})
	return s
}

func key(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// SetDefaultA makes every A query for an unknown name answer ip.
func (s *DNSServer) SetDefaultA(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultA = net.ParseIP(ip)
}

// SetA replaces name's A (IPv4) and AAAA (IPv6) records with ips.
func (s *DNSServer) SetA(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(name)
	delete(s.a, k)
	delete(s.aaaa, k)
	for _, v := range ips {
		ip := net.ParseIP(v)
		if ip.To4() != nil {
			s.a[k] = append(s.a[k], ip.To4())
		} else {
			s.aaaa[k] = append(s.aaaa[k], ip)
		}
	}
}

// SetCNAME makes name an alias of target ("" removes it).
func (s *DNSServer) SetCNAME(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if target == "" {
		delete(s.cname, key(name))
		return
	}
	s.cname[key(name)] = key(target)
}

// SetTXT replaces name's TXT records (none removes them).
func (s *DNSServer) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(values) == 0 {
		delete(s.txt, key(name))
		return
	}
	s.txt[key(name)] = values
}

// ServeDNS answers one query.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		m.Answer, m.Rcode = s.answer(q.Name, q.Qtype)
	}
	_ = w.WriteMsg(m)
}

func (s *DNSServer) answer(qname string, qtype uint16) ([]dns.RR, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := key(qname)
	hdr := func(n string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: n, Rrtype: t, Class: dns.ClassINET, Ttl: 0}
	}
	var out []dns.RR
	known := false
	// Follow CNAMEs for every type but CNAME itself (at most 8 hops).
	for range 8 {
		target, ok := s.cname[name]
		if !ok {
			break
		}
		known = true
		out = append(out, &dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: target})
		if qtype == dns.TypeCNAME {
			return out, dns.RcodeSuccess
		}
		name = target
	}
	_, hasA := s.a[name]
	_, hasAAAA := s.aaaa[name]
	_, hasTXT := s.txt[name]
	known = known || hasA || hasAAAA || hasTXT
	// An unknown name under DefaultA exists, with that one A record.
	defaulted := !known && s.defaultA != nil && !strings.HasPrefix(name, "_")
	known = known || defaulted
	switch qtype {
	case dns.TypeA:
		for _, ip := range s.a[name] {
			out = append(out, &dns.A{Hdr: hdr(name, dns.TypeA), A: ip})
		}
		if defaulted {
			out = append(out, &dns.A{Hdr: hdr(name, dns.TypeA), A: s.defaultA})
		}
	case dns.TypeAAAA:
		for _, ip := range s.aaaa[name] {
			out = append(out, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: ip})
		}
	case dns.TypeTXT:
		for _, v := range s.txt[name] {
			out = append(out, &dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: split255(v)})
		}
	}
	if !known {
		return nil, dns.RcodeNameError
	}
	return out, dns.RcodeSuccess
}

// split255 splits a TXT value into the 255-byte strings DNS carries.
func split255(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}
