package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
)

// testData pins the data store: scopes (project, stage) never see each
// other, upserts replace value, labels and expiry, expired items are gone
// for every read, lists are by key with prefix, label and cursor, and an
// item goes with its project.
func testData(t *testing.T, open func(t *testing.T) control.Store) {
	setup := func(t *testing.T) (control.Store, control.DataScope) {
		s := open(t)
		p := &control.Project{Name: "kv"}
		if err := s.CreateProject(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		return s, control.DataScope{ProjectID: p.ID, Stage: control.Production}
	}
	keys := func(items []control.DataItem) []string {
		out := []string{}
		for _, it := range items {
			out = append(out, it.Key)
		}
		return out
	}

	t.Run("SetGetDelete", func(t *testing.T) {
		s, sc := setup(t)
		ctx := t.Context()
		it := &control.DataItem{Key: "user:1", Value: json.RawMessage(`{"name":"ada"}`), Labels: []string{"admins"}}
		if err := s.DataSet(ctx, sc, it); err != nil {
			t.Fatalf("DataSet: %v", err)
		}
		if it.UpdatedAt.IsZero() || it.UpdatedAt.Location() != time.UTC {
			t.Errorf("UpdatedAt = %v, want now in UTC", it.UpdatedAt)
		}
		got, err := s.DataGet(ctx, sc, "user:1")
		if err != nil || string(got.Value) != `{"name":"ada"}` || !slices.Equal(got.Labels, []string{"admins"}) || !got.ExpiresAt.IsZero() {
			t.Fatalf("DataGet = %+v, %v", got, err)
		}
		// Replace: labels go when not given again.
		if err := s.DataSet(ctx, sc, &control.DataItem{Key: "user:1", Value: json.RawMessage(`2`)}); err != nil {
			t.Fatal(err)
		}
		got, err = s.DataGet(ctx, sc, "user:1")
		if err != nil || string(got.Value) != `2` || len(got.Labels) != 0 || got.Labels == nil {
			t.Fatalf("after replace: %+v, %v (labels must be empty, non-nil)", got, err)
		}
		if l, _ := s.DataList(ctx, sc, control.DataQuery{Label: "admins"}); len(l) != 0 {
			t.Errorf("label list after replace = %v, want empty", keys(l))
		}
		ok, err := s.DataDelete(ctx, sc, "user:1")
		if err != nil || !ok {
			t.Fatalf("DataDelete = %v, %v; want true", ok, err)
		}
		if ok, err := s.DataDelete(ctx, sc, "user:1"); err != nil || ok {
			t.Errorf("second DataDelete = %v, %v; want false", ok, err)
		}
		if _, err := s.DataGet(ctx, sc, "user:1"); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("DataGet after delete: %v, want ErrNotFound", err)
		}
		if err := s.DataSet(ctx, control.DataScope{ProjectID: "prj-none", Stage: control.Production},
			&control.DataItem{Key: "a", Value: json.RawMessage(`1`)}); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("DataSet on an unknown project: %v, want ErrNotFound", err)
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		s, sc := setup(t)
		ctx := t.Context()
		other := &control.Project{Name: "other"}
		if err := s.CreateProject(ctx, other); err != nil {
			t.Fatal(err)
		}
		scopes := []control.DataScope{
			sc,
			{ProjectID: sc.ProjectID, Stage: control.Staging},
			{ProjectID: sc.ProjectID, Stage: control.Preview},
			{ProjectID: sc.ProjectID, Stage: control.SandboxPrefix + "alice"},
			{ProjectID: other.ID, Stage: control.Production},
		}
		for i, x := range scopes {
			if err := s.DataSet(ctx, x, &control.DataItem{Key: "k", Value: json.RawMessage(fmt.Sprint(i)), Labels: []string{"l"}}); err != nil {
				t.Fatal(err)
			}
		}
		for i, x := range scopes {
			got, err := s.DataGet(ctx, x, "k")
			if err != nil || string(got.Value) != fmt.Sprint(i) {
				t.Errorf("scope %+v: %+v, %v; want %d", x, got, err, i)
			}
			l, err := s.DataList(ctx, x, control.DataQuery{Label: "l"})
			if err != nil || len(l) != 1 || string(l[0].Value) != fmt.Sprint(i) {
				t.Errorf("scope %+v list: %+v, %v", x, l, err)
			}
		}
		if ok, _ := s.DataDelete(ctx, scopes[1], "k"); !ok {
			t.Error("delete in staging found nothing")
		}
		if _, err := s.DataGet(ctx, sc, "k"); err != nil {
			t.Errorf("production's key went with staging's: %v", err)
		}
		if err := s.DeleteProject(ctx, other.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DataGet(ctx, scopes[4], "k"); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("data of a deleted project: %v, want ErrNotFound", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		s, sc := setup(t)
		ctx := t.Context()
		for _, k := range []string{"user:2", "user:10", "order:1", "user:1", "user", "users:1", "z"} {
			var labels []string
			if k == "user:1" || k == "order:1" || k == "z" {
				labels = []string{"vip", "x"}
			}
			if err := s.DataSet(ctx, sc, &control.DataItem{Key: k, Value: json.RawMessage(`true`), Labels: labels}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			q    control.DataQuery
			want []string
		}{
			{control.DataQuery{}, []string{"order:1", "user", "user:1", "user:10", "user:2", "users:1", "z"}},
			{control.DataQuery{Prefix: "user:"}, []string{"user:1", "user:10", "user:2"}},
			{control.DataQuery{Prefix: "user:", Limit: 2}, []string{"user:1", "user:10"}},
			{control.DataQuery{Prefix: "user:", After: "user:10"}, []string{"user:2"}},
			{control.DataQuery{Label: "vip"}, []string{"order:1", "user:1", "z"}},
			{control.DataQuery{Label: "vip", Prefix: "user"}, []string{"user:1"}},
			{control.DataQuery{Label: "none"}, []string{}},
			{control.DataQuery{Prefix: "%"}, []string{}},
			{control.DataQuery{Prefix: "_ser"}, []string{}},
		} {
			got, err := s.DataList(ctx, sc, tc.q)
			if err != nil || !slices.Equal(keys(got), tc.want) {
				t.Errorf("DataList(%+v) = %v, %v; want %v", tc.q, keys(got), err, tc.want)
			}
		}
	})

	t.Run("TTL", func(t *testing.T) {
		s, sc := setup(t)
		ctx := t.Context()
		past := time.Now().Add(-time.Second)
		future := time.Now().Add(time.Hour)
		if err := s.DataSet(ctx, sc, &control.DataItem{Key: "old", Value: json.RawMessage(`1`), Labels: []string{"l"}, ExpiresAt: past}); err != nil {
			t.Fatal(err)
		}
		it := &control.DataItem{Key: "new", Value: json.RawMessage(`1`), Labels: []string{"l"}, ExpiresAt: future}
		if err := s.DataSet(ctx, sc, it); err != nil {
			t.Fatal(err)
		}
		if want := future.UTC().Truncate(time.Microsecond); !it.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %v, want %v", it.ExpiresAt, want)
		}
		if _, err := s.DataGet(ctx, sc, "old"); !errors.Is(err, control.ErrNotFound) {
			t.Errorf("expired DataGet: %v, want ErrNotFound", err)
		}
		got, err := s.DataGet(ctx, sc, "new")
		if err != nil || !got.ExpiresAt.Equal(it.ExpiresAt) {
			t.Errorf("DataGet(new) = %+v, %v", got, err)
		}
		for _, q := range []control.DataQuery{{}, {Label: "l"}} {
			if l, err := s.DataList(ctx, sc, q); err != nil || !slices.Equal(keys(l), []string{"new"}) {
				t.Errorf("DataList(%+v) = %v, %v; want [new]", q, keys(l), err)
			}
		}
		if ok, err := s.DataDelete(ctx, sc, "old"); err != nil || ok {
			t.Errorf("DataDelete(expired) = %v, %v; want false", ok, err)
		}
		if err := s.DataSet(ctx, sc, &control.DataItem{Key: "old", Value: json.RawMessage(`1`), ExpiresAt: past}); err != nil {
			t.Fatal(err)
		}
		n, err := s.PruneData(ctx, time.Now())
		if err != nil || n != 1 {
			t.Errorf("PruneData = %d, %v; want 1", n, err)
		}
		if _, err := s.DataGet(ctx, sc, "new"); err != nil {
			t.Errorf("PruneData removed a live item: %v", err)
		}
	})
}
