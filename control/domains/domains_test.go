package domains_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/domains"
	"github.com/pierhq/pier/control/store/sqlitestore"
	"github.com/pierhq/pier/tests/testenv"
)

// published records what the service told the edges.
type published struct {
	mu sync.Mutex
	m  map[string]string // domain -> project name
}

func (p *published) PublishDomain(_ context.Context, domain, _, projectName string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[domain] = projectName
	return nil
}

func (p *published) UnpublishDomain(_ context.Context, domain string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, domain)
	return nil
}

func (p *published) get(domain string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[domain]
	return v, ok
}

type fixture struct {
	svc   *domains.Service
	dns   *testenv.DNSServer
	store control.Store
	pub   *published
	now   time.Time // the service's clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "control.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for _, name := range []string{"shop", "blog"} {
		if err := store.CreateProject(t.Context(), &control.Project{Name: name, RepoURL: "https://git.example.test/" + name + ".git", Branch: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	srv := testenv.DNS(t)
	pub := &published{m: map[string]string{}}
	f := &fixture{dns: srv, store: store, pub: pub, now: time.Now()}
	f.svc, err = domains.New(domains.Config{
		Resolver: srv.Addr, BaseDomain: "pier.test", CNAMETarget: "edge.pier.test",
		EdgeAddrs: []string{"192.0.2.10", "192.0.2.11", "2001:db8::10"},
		Now:       func() time.Time { return f.now },
	}, domains.Deps{Store: store, Projects: store, Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestVerify: each way a domain's DNS can be set, and what verification
// answers.
func TestVerify(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(s *testenv.DNSServer, domain, token string)
		wantCode string // "" = verified
		wantMsg  string // part of the message
	}{
		{"cname to the target", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, tok)
			s.SetCNAME(d, "edge.pier.test")
		}, "", ""},
		{"cname to the project host", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, tok)
			s.SetCNAME(d, "SHOP.pier.test.")
		}, "", ""},
		{"A records of the edges", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, tok)
			s.SetA(d, "192.0.2.10", "192.0.2.11", "2001:db8::10")
		}, "", ""},
		{"token among other TXT values", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, "v=spf1 -all", tok)
			s.SetA(d, "192.0.2.10")
		}, "", ""},
		{"cname chain ending at edge addresses", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, tok)
			s.SetCNAME(d, "lb.example.test")
			s.SetA("lb.example.test", "192.0.2.11")
		}, "", ""},
		{"no TXT record", func(s *testenv.DNSServer, d, tok string) {
			s.SetCNAME(d, "edge.pier.test")
		}, "txt_missing", "no TXT record at _pier-challenge."},
		{"wrong TXT value", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, "pier-verify=someoneelse")
			s.SetCNAME(d, "edge.pier.test")
		}, "txt_mismatch", "someoneelse"},
		{"A record elsewhere", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, tok)
			s.SetA(d, "192.0.2.10", "198.51.100.7")
		}, "not_pointing", "198.51.100.7, which is not a Pier edge"},
		{"cname elsewhere", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, tok)
			s.SetCNAME(d, "other-host.example.net")
			s.SetA("other-host.example.net", "203.0.113.5")
		}, "not_pointing", "CNAME to other-host.example.net"},
		{"points nowhere", func(s *testenv.DNSServer, d, tok string) {
			s.SetTXT("_pier-challenge."+d, tok)
		}, "not_pointing", "no CNAME, A or AAAA record"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			domain := "www" + string(rune('a'+i)) + ".customer.test"
			d, err := f.svc.Add(ctx, "shop", strings.ToUpper(domain)+".")
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if d.Name != domain || d.State != control.DomainPending || !strings.HasPrefix(d.Token, "pier-verify=") {
				t.Fatalf("added %+v", d)
			}
			tt.setup(f.dns, domain, d.Token)
			got, err := f.svc.Verify(ctx, "shop", domain)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.State != control.DomainVerified || got.VerifiedAt.IsZero() {
					t.Errorf("verified domain: %+v", got)
				}
				if p, ok := f.pub.get(domain); !ok || p != "shop" {
					t.Errorf("published %q=%q, %v; want shop", domain, p, ok)
				}
				return
			}
			var ce *domains.CheckError
			if !errors.As(err, &ce) || ce.Code != tt.wantCode || !strings.Contains(ce.Message, tt.wantMsg) {
				t.Fatalf("Verify = %v (%#v), want code %s with %q", err, ce, tt.wantCode, tt.wantMsg)
			}
			t.Logf("%s: %s", ce.Code, ce.Message)
			if stored, _ := f.store.GetDomain(ctx, domain); stored.State != control.DomainPending {
				t.Errorf("a failed verification changed the state to %s", stored.State)
			}
			if _, ok := f.pub.get(domain); ok {
				t.Error("a failed verification published the domain")
			}
		})
	}
}

// TestVerifyDNSDown: a resolver that does not answer is a clear
// dns_failed, not a verification verdict.
func TestVerifyDNSDown(t *testing.T) {
	store, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "control.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateProject(t.Context(), &control.Project{Name: "shop", RepoURL: "https://x.test/s.git", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	port, _ := testenv.FreePort()
	svc, err := domains.New(domains.Config{Resolver: fmt.Sprintf("127.0.0.1:%d", port), Timeout: 200 * time.Millisecond},
		domains.Deps{Store: store, Projects: store, Publisher: &published{m: map[string]string{}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Add(t.Context(), "shop", "www.customer.test"); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Verify(t.Context(), "shop", "www.customer.test")
	var ce *domains.CheckError
	if !errors.As(err, &ce) || ce.Code != "dns_failed" {
		t.Fatalf("Verify with no DNS server = %v, want dns_failed", err)
	}
}

// TestClaims: a domain belongs to one project; a verified one cannot be
// taken over; bad names are refused with a reason.
func TestClaims(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	d, err := f.svc.Add(ctx, "shop", "www.customer.test")
	if err != nil {
		t.Fatal(err)
	}
	claim := func(project, name string) string {
		t.Helper()
		_, err := f.svc.Add(ctx, project, name)
		var ce *domains.ClaimError
		if !errors.As(err, &ce) || !errors.Is(err, control.ErrConflict) {
			t.Fatalf("Add(%s, %s) = %v, want a ClaimError", project, name, err)
		}
		return ce.Code
	}
	if code := claim("blog", "www.customer.test"); code != "domain_claimed" {
		t.Errorf("pending elsewhere: %s", code)
	}
	if code := claim("shop", "WWW.customer.test"); code != "domain_exists" {
		t.Errorf("again: %s", code)
	}
	f.dns.SetTXT("_pier-challenge.www.customer.test", d.Token)
	f.dns.SetCNAME("www.customer.test", "edge.pier.test")
	if _, err := f.svc.Verify(ctx, "shop", "www.customer.test"); err != nil {
		t.Fatal(err)
	}
	if code := claim("blog", "www.customer.test"); code != "domain_taken" {
		t.Errorf("verified elsewhere: %s", code)
	}
	// Another project cannot verify, list or delete it either.
	if _, err := f.svc.Verify(ctx, "blog", "www.customer.test"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("Verify by another project = %v, want not found", err)
	}
	if err := f.svc.Delete(ctx, "blog", "www.customer.test"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("Delete by another project = %v, want not found", err)
	}
	if _, ok := f.pub.get("www.customer.test"); !ok {
		t.Error("the domain stopped being served")
	}
	// The owner deletes it: unpublished, and free to claim.
	if err := f.svc.Delete(ctx, "shop", "www.customer.test"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.pub.get("www.customer.test"); ok {
		t.Error("deleted domain still published")
	}
	if _, err := f.svc.Add(ctx, "blog", "www.customer.test"); err != nil {
		t.Errorf("claim a freed domain: %v", err)
	}

	bad := []struct{ name, want string }{
		{"", "required"},
		{"localhost", "fully qualified"},
		{"*.customer.test", "wildcard"},
		{"192.0.2.1", "IP address"},
		{"shop.pier.test", "Pier's own"},
		{"pier.test", "Pier's own"},
		{"bad_label.customer.test", "not a valid domain name"},
		{"-x.customer.test", "not a valid domain name"},
		{"a..customer.test", "not a valid domain name"},
	}
	for _, b := range bad {
		_, err := f.svc.Add(ctx, "shop", b.name)
		var ve *control.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(ve.Error(), b.want) {
			t.Errorf("Add(%q) = %v, want a validation error about %q", b.name, err, b.want)
		}
	}
	if _, err := f.svc.Add(ctx, "nope", "x.customer.test"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("Add(unknown project) = %v", err)
	}
}

func (p *published) PublishedDomains(context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []string{}
	for d := range p.m {
		out = append(out, d)
	}
	return out, nil
}

// TestSync: the edges' table follows the store: verified domains are
// (re)published, stale ones (a deleted project's) removed, pending ones
// never published.
func TestSync(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for _, name := range []string{"a.customer.test", "b.customer.test"} {
		d, err := f.svc.Add(ctx, "shop", name)
		if err != nil {
			t.Fatal(err)
		}
		f.dns.SetTXT("_pier-challenge."+name, d.Token)
		f.dns.SetCNAME(name, "edge.pier.test")
	}
	if _, err := f.svc.Verify(ctx, "shop", "a.customer.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Add(ctx, "blog", "pending.customer.test"); err != nil {
		t.Fatal(err)
	}
	f.pub.m = map[string]string{"stale.customer.test": "gone"} // lost a.customer.test, holds a stale one
	if err := f.svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.pub.PublishedDomains(ctx); len(got) != 1 || got[0] != "a.customer.test" {
		t.Errorf("published after sync: %v", got)
	}
	p, _ := f.store.GetProject(ctx, "shop")
	if err := f.store.DeleteProject(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.pub.PublishedDomains(ctx); len(got) != 0 {
		t.Errorf("a deleted project's domain still published: %v", got)
	}
}

// TestPendingClaimLapses: a claim nobody verifies holds the domain for
// PendingTTL; after that another project may add it, and the first one's
// token no longer verifies anything. A verified domain never lapses.
func TestPendingClaimLapses(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	squat, err := f.svc.Add(ctx, "shop", "www.customer.test")
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(domains.DefaultPendingTTL - time.Minute)
	_, err = f.svc.Add(ctx, "blog", "www.customer.test")
	var ce *domains.ClaimError
	if !errors.As(err, &ce) || ce.Code != "domain_claimed" || !strings.Contains(ce.Message, "lapses 7 days after") {
		t.Fatalf("Add before the claim lapsed = %v, want domain_claimed saying when it lapses", err)
	}
	f.now = f.now.Add(2 * time.Minute)
	d, err := f.svc.Add(ctx, "blog", "www.customer.test")
	if err != nil {
		t.Fatalf("Add after the claim lapsed: %v", err)
	}
	if d.ProjectID == squat.ProjectID || d.Token == squat.Token {
		t.Errorf("the new claim %+v kept the old one's project or token", d)
	}
	if _, _, err := f.svc.Domain(ctx, "shop", "www.customer.test"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("the lapsed claim is still shop's: %v", err)
	}

	// Verified: never lapses.
	f.dns.SetTXT("_pier-challenge.www.customer.test", d.Token)
	f.dns.SetCNAME("www.customer.test", "edge.pier.test")
	if _, err := f.svc.Verify(ctx, "blog", "www.customer.test"); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(365 * 24 * time.Hour)
	if _, err := f.svc.Add(ctx, "shop", "www.customer.test"); !errors.As(err, &ce) || ce.Code != "domain_taken" {
		t.Errorf("Add of a verified domain a year on = %v, want domain_taken", err)
	}
}
