package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pierhq/pier/control"
)

// testDomains: custom domains are unique across projects, listed by name,
// verified in place, and go with their project.
func testDomains(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	p := mustProject(t, s, "app")
	q := mustProject(t, s, "other")

	if got, err := s.ListDomains(ctx, p.ID); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListDomains(none) = %v, %v; want an empty non-nil slice", got, err)
	}
	www := &control.Domain{Name: "www.example.test", ProjectID: p.ID, Token: "tok-1", State: control.DomainPending, CreatedAt: base}
	if err := s.CreateDomain(ctx, www); err != nil {
		t.Fatalf("CreateDomain: %v", err)
	}
	if want := base.UTC().Truncate(time.Microsecond); !www.CreatedAt.Equal(want) || www.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v in UTC", www.CreatedAt, want)
	}
	apex := &control.Domain{Name: "example.test", ProjectID: p.ID, Token: "tok-2", State: control.DomainPending}
	if err := s.CreateDomain(ctx, apex); err != nil {
		t.Fatalf("CreateDomain(apex): %v", err)
	}
	if apex.CreatedAt.IsZero() {
		t.Error("CreateDomain did not fill in CreatedAt")
	}

	got, err := s.GetDomain(ctx, "www.example.test")
	if err != nil {
		t.Fatalf("GetDomain: %v", err)
	}
	if diff := cmp.Diff(www, got); diff != "" {
		t.Errorf("GetDomain (-want +got):\n%s", diff)
	}

	// Unique across projects: the same name for another project, or twice.
	for _, pid := range []string{q.ID, p.ID} {
		err := s.CreateDomain(ctx, &control.Domain{Name: "www.example.test", ProjectID: pid, Token: "x", State: control.DomainPending})
		if !errors.Is(err, control.ErrConflict) {
			t.Errorf("CreateDomain(claimed name, project %s) = %v, want ErrConflict", pid, err)
		}
	}
	if err := s.CreateDomain(ctx, &control.Domain{Name: "new.example.test", ProjectID: "prj-missing", Token: "x", State: control.DomainPending}); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("CreateDomain(unknown project) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetDomain(ctx, "nope.example.test"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("GetDomain(unknown) = %v, want ErrNotFound", err)
	}

	other := &control.Domain{Name: "shop.example.test", ProjectID: q.ID, Token: "tok-3", State: control.DomainPending}
	if err := s.CreateDomain(ctx, other); err != nil {
		t.Fatal(err)
	}
	names := func(ds []*control.Domain) []string {
		out := []string{}
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}
	if got, err := s.ListDomains(ctx, p.ID); err != nil || !cmp.Equal(names(got), []string{"example.test", "www.example.test"}) {
		t.Errorf("ListDomains(p) = %v, %v", names(got), err)
	}
	if got, err := s.ListDomains(ctx, ""); err != nil || !cmp.Equal(names(got), []string{"example.test", "shop.example.test", "www.example.test"}) {
		t.Errorf("ListDomains(all) = %v, %v", names(got), err)
	}

	// Verify: only the owning project's domain.
	if err := s.MarkDomainVerified(ctx, q.ID, "www.example.test", base); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("MarkDomainVerified(other project) = %v, want ErrNotFound", err)
	}
	if err := s.MarkDomainVerified(ctx, p.ID, "www.example.test", base); err != nil {
		t.Fatalf("MarkDomainVerified: %v", err)
	}
	got, err = s.GetDomain(ctx, "www.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != control.DomainVerified || !got.VerifiedAt.Equal(base.UTC().Truncate(time.Microsecond)) || got.VerifiedAt.Location() != time.UTC {
		t.Errorf("after verify: state %q, verified at %v", got.State, got.VerifiedAt)
	}
	if a, _ := s.GetDomain(ctx, "example.test"); a == nil || a.State != control.DomainPending || !a.VerifiedAt.IsZero() {
		t.Errorf("the other domain changed: %+v", a)
	}

	// Delete: only the owner's; unknown wraps ErrNotFound.
	if err := s.DeleteDomain(ctx, q.ID, "www.example.test"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("DeleteDomain(other project) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteDomain(ctx, p.ID, "www.example.test"); err != nil {
		t.Fatalf("DeleteDomain: %v", err)
	}
	if err := s.DeleteDomain(ctx, p.ID, "www.example.test"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("DeleteDomain(again) = %v, want ErrNotFound", err)
	}
	// Freed: another project may claim it now.
	if err := s.CreateDomain(ctx, &control.Domain{Name: "www.example.test", ProjectID: q.ID, Token: "tok-4", State: control.DomainPending}); err != nil {
		t.Errorf("CreateDomain(freed name) = %v", err)
	}

	// A pending claim older than the cut-off goes; a newer one and a
	// verified one stay.
	stale := &control.Domain{Name: "old.example.test", ProjectID: q.ID, Token: "tok-5", State: control.DomainPending, CreatedAt: base.Add(-time.Hour)}
	if err := s.CreateDomain(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if gone, err := s.DeleteStaleDomain(ctx, "old.example.test", base.Add(-2*time.Hour)); err != nil || gone {
		t.Errorf("DeleteStaleDomain(newer than the cut-off) = %v, %v; want false", gone, err)
	}
	if gone, err := s.DeleteStaleDomain(ctx, "old.example.test", base); err != nil || !gone {
		t.Errorf("DeleteStaleDomain(older than the cut-off) = %v, %v; want true", gone, err)
	}
	if _, err := s.GetDomain(ctx, "old.example.test"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("GetDomain(deleted stale claim) = %v, want ErrNotFound", err)
	}
	if err := s.MarkDomainVerified(ctx, q.ID, "www.example.test", base); err != nil {
		t.Fatal(err)
	}
	if gone, err := s.DeleteStaleDomain(ctx, "www.example.test", time.Now().Add(time.Hour)); err != nil || gone {
		t.Errorf("DeleteStaleDomain(verified) = %v, %v; want false", gone, err)
	}
	if gone, err := s.DeleteStaleDomain(ctx, "nope.example.test", time.Now()); err != nil || gone {
		t.Errorf("DeleteStaleDomain(unknown) = %v, %v; want false, nil", gone, err)
	}

	// Domains go with their project.
	if err := s.DeleteProject(ctx, q.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListDomains(ctx, ""); err != nil || !cmp.Equal(names(got), []string{"example.test"}) {
		t.Errorf("ListDomains after deleting a project = %v, %v", names(got), err)
	}
}
