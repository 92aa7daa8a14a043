package coordtest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/pierhq/pier/edge/coord"
)

// runDomains: published custom domains are listed and watched by every
// edge; deleting one stops it being routed.
func runDomains(t *testing.T, newKV func(t *testing.T) coord.KV) {
	f := newFixture(t, newKV, nil)
	ctx := t.Context()
	var (
		mu   sync.Mutex
		seen []coord.DomainRoute
	)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- f.c.WatchDomains(wctx, func(rs []coord.DomainRoute) {
			mu.Lock()
			seen = rs
			mu.Unlock()
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	names := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := []string{}
		for _, r := range seen {
			out = append(out, r.Domain+"="+r.ProjectName)
		}
		return out
	}

	must(t, f.c.PutDomain(ctx, coord.DomainRoute{Domain: "WWW.Example.test", ProjectID: "p1", ProjectName: "shop"}))
	must(t, f.c.PutDomain(ctx, coord.DomainRoute{Domain: "example.test", ProjectID: "p1", ProjectName: "shop"}))
	eventually(t, "two domains watched", func() bool {
		return slices.Equal(names(), []string{"example.test=shop", "www.example.test=shop"})
	})
	rs, err := f.c.Domains(ctx)
	must(t, err)
	if len(rs) != 2 || rs[1].Domain != "www.example.test" || rs[1].ProjectID != "p1" {
		t.Errorf("Domains = %+v", rs)
	}
	must(t, f.c.DeleteDomain(ctx, "www.example.test"))
	must(t, f.c.DeleteDomain(ctx, "never.example.test")) // missing: not an error
	eventually(t, "one domain watched", func() bool { return slices.Equal(names(), []string{"example.test=shop"}) })

	for _, bad := range []coord.DomainRoute{{Domain: "", ProjectID: "p1", ProjectName: "x"}, {Domain: "a/b", ProjectID: "p1", ProjectName: "x"}} {
		if err := f.c.PutDomain(ctx, bad); err == nil {
			t.Errorf("PutDomain(%q) accepted", bad.Domain)
		}
	}
}
