package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/api"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/domains"
	"github.com/pierhq/pier/control/secrets/localkeyring"
	"github.com/pierhq/pier/control/store/sqlitestore"
	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/tests/testenv"
)

type nopPublisher struct{}

func (nopPublisher) PublishDomain(context.Context, string, string, string) error { return nil }
func (nopPublisher) UnpublishDomain(context.Context, string) error               { return nil }

// TestDomainRoutes: the domain routes end to end over HTTP with a real
// DNS server: add, a failed verify with its reason, verify, the takeover
// refused with its own code, list, delete.
func TestDomainRoutes(t *testing.T) {
	dir := t.TempDir()
	store, err := sqlitestore.Open(t.Context(), filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys, _ := localkeyring.Open(filepath.Join(dir, "keyring"))
	blobs, _ := dirblob.New(filepath.Join(dir, "blobs"))
	svc := deploy.New(deploy.DefaultConfig(), deploy.Deps{Store: store, Dispatcher: nopDispatcher{}, Router: nopRouter{}, Sealer: keys, Blobs: blobs})
	dns := testenv.DNS(t)
	dom, err := domains.New(domains.Config{Resolver: dns.Addr, BaseDomain: "pier.test", EdgeAddrs: []string{"192.0.2.10"}},
		domains.Deps{Store: store, Projects: store, Publisher: nopPublisher{}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api.New(api.Config{BaseDomain: "pier.test"}, api.Deps{Deploy: svc, Tokens: store, Domains: dom}))
	t.Cleanup(ts.Close)
	s := &server{url: ts.URL, store: store}
	var tok *control.Token
	s.admin, tok = api.NewToken("admin", control.ScopeAdmin)
	store.CreateToken(t.Context(), tok)
	s.reader, tok = api.NewToken("reader", control.ScopeRead)
	store.CreateToken(t.Context(), tok)
	for _, p := range []string{"shop", "blog"} {
		if code, out, _ := s.do(t, s.admin, "POST", "/v1/projects", `{"name":"`+p+`","repo_url":"https://git.test/`+p+`.git"}`); code != 201 {
			t.Fatalf("create %s: %d %v", p, code, out)
		}
	}

	code, out, _ := s.do(t, s.admin, "POST", "/v1/projects/shop/domains", `{"name":"WWW.Customer.test"}`)
	if code != 201 || out["state"] != "pending" || out["name"] != "www.customer.test" {
		t.Fatalf("add: %d %v", code, out)
	}
	token, _ := out["token"].(string)
	recs, _ := out["records"].([]any)
	if len(recs) != 3 || !strings.Contains(strings.ToLower(toString(recs)), "_pier-challenge.www.customer.test") {
		t.Errorf("records: %v", recs)
	}

	if code, out, _ := s.do(t, s.admin, "POST", "/v1/projects/shop/domains/www.customer.test/verify", ""); code != 422 || errCode(out) != "txt_missing" {
		t.Errorf("verify without TXT: %d %v", code, out)
	}
	dns.SetTXT("_pier-challenge.www.customer.test", token)
	dns.SetA("www.customer.test", "198.51.100.1")
	if code, out, _ := s.do(t, s.admin, "POST", "/v1/projects/shop/domains/www.customer.test/verify", ""); code != 422 || errCode(out) != "not_pointing" {
		t.Errorf("verify pointing elsewhere: %d %v", code, out)
	}
	dns.SetA("www.customer.test", "192.0.2.10")
	if code, out, _ := s.do(t, s.reader, "POST", "/v1/projects/shop/domains/www.customer.test/verify", ""); code != 403 {
		t.Errorf("reader verifies: %d %v", code, out)
	}
	if code, out, _ := s.do(t, s.admin, "POST", "/v1/projects/shop/domains/www.customer.test/verify", ""); code != 200 || out["state"] != "verified" || out["verified_at"] == nil {
		t.Fatalf("verify: %d %v", code, out)
	}

	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"takeover", "POST", "/v1/projects/blog/domains", `{"name":"www.customer.test"}`, 409, "domain_taken"},
		{"twice", "POST", "/v1/projects/shop/domains", `{"name":"www.customer.test"}`, 409, "domain_exists"},
		{"bad name", "POST", "/v1/projects/shop/domains", `{"name":"not a domain"}`, 400, "invalid"},
		{"unknown field", "POST", "/v1/projects/shop/domains", `{"domain":"x.test"}`, 400, "bad_request"},
		{"unknown project", "POST", "/v1/projects/nope/domains", `{"name":"a.customer.test"}`, 404, "not_found"},
		{"another project's", "GET", "/v1/projects/blog/domains/www.customer.test", "", 404, "not_found"},
		{"delete another project's", "DELETE", "/v1/projects/blog/domains/www.customer.test", "", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, _ := s.do(t, s.admin, tt.method, tt.path, tt.body)
			if code != tt.status || errCode(out) != tt.code {
				t.Errorf("%s %s: %d %v, want %d %s", tt.method, tt.path, code, out, tt.status, tt.code)
			}
		})
	}

	if code, out, _ := s.do(t, s.reader, "GET", "/v1/projects/shop/domains", ""); code != 200 || len(out["domains"].([]any)) != 1 {
		t.Errorf("list: %d %v", code, out)
	}
	if code, _, _ := s.do(t, s.admin, "DELETE", "/v1/projects/shop/domains/www.customer.test", ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, out, _ := s.do(t, s.admin, "POST", "/v1/projects/blog/domains", `{"name":"www.customer.test"}`); code != 201 {
		t.Errorf("claim after delete: %d %v", code, out)
	}
}

// TestDomainRoutesDisabled: without the workflow the routes say so.
func TestDomainRoutesDisabled(t *testing.T) {
	s := newServer(t)
	if code, out, _ := s.do(t, s.admin, "GET", "/v1/projects/x/domains", ""); code != 404 || !strings.Contains(toString(out), "not enabled") {
		t.Errorf("%d %v", code, out)
	}
}

func toString(v any) string { return strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\n", " ")) }

func fmtAny(v any) string { return fmt.Sprint(v) }

func (nopPublisher) PublishedDomains(context.Context) ([]string, error) { return nil, nil }
