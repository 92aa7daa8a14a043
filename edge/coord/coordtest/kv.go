package coordtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/coord"
)

func runKV(t *testing.T, newKV func(t *testing.T) coord.KV) {
	t.Run("GetPutDelete", func(t *testing.T) {
		t.Parallel()
		kv := newKV(t)
		ctx := t.Context()
		if _, err := kv.Get(ctx, "t/a"); !errors.Is(err, coord.ErrNotFound) {
			t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
		}
		must(t, kv.Put(ctx, "t/a", []byte("1")))
		p1 := get(t, kv, "t/a")
		if string(p1.Value) != "1" || p1.Key != "t/a" || p1.Session != "" || p1.LockIndex != 0 {
			t.Fatalf("after Put: %+v", p1)
		}
		if p1.CreateIndex == 0 || p1.ModifyIndex != p1.CreateIndex {
			t.Fatalf("new key indexes: create %d modify %d", p1.CreateIndex, p1.ModifyIndex)
		}
		must(t, kv.Put(ctx, "t/a", []byte("2")))
		p2 := get(t, kv, "t/a")
		if string(p2.Value) != "2" || p2.CreateIndex != p1.CreateIndex || p2.ModifyIndex <= p1.ModifyIndex {
			t.Fatalf("after overwrite: %+v (before %+v)", p2, p1)
		}
		must(t, kv.Delete(ctx, "t/a"))
		if !absent(t, kv, "t/a") {
			t.Fatal("key still there after Delete")
		}
		must(t, kv.Delete(ctx, "t/a")) // missing: not an error
		must(t, kv.Put(ctx, "t/a", nil))
		if p3 := get(t, kv, "t/a"); p3.CreateIndex <= p2.ModifyIndex || len(p3.Value) != 0 {
			t.Fatalf("recreated key: %+v", p3)
		}
	})

	t.Run("ListPrefix", func(t *testing.T) {
		t.Parallel()
		kv := newKV(t)
		ctx := t.Context()
		for _, k := range []string{"l/b/1", "l/a/2", "l/ab", "l/a/1", "m/a"} {
			must(t, kv.Put(ctx, k, []byte(k)))
		}
		tests := []struct {
			name, prefix string
			want         []string
		}{
			{"folder", "l/a/", []string{"l/a/1", "l/a/2"}},
			{"stem", "l/a", []string{"l/a/1", "l/a/2", "l/ab"}},
			{"tree", "l/", []string{"l/a/1", "l/a/2", "l/ab", "l/b/1"}},
			{"none", "l/zz", []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				pairs, idx, err := kv.List(ctx, tt.prefix, 0, 0)
				must(t, err)
				equal(t, "keys", keys(pairs), tt.want)
				for _, p := range pairs {
					if string(p.Value) != p.Key {
						t.Errorf("value of %s = %q", p.Key, p.Value)
					}
				}
				// Consul's index is the prefix's own (its highest write or
				// delete), not the store's.
				var top uint64
				for _, p := range pairs {
					top = max(top, p.ModifyIndex)
				}
				if idx < top {
					t.Errorf("index = %d, below the highest ModifyIndex under the prefix %d", idx, top)
				}
			})
		}
	})

	t.Run("CAS", func(t *testing.T) {
		t.Parallel()
		kv := newKV(t)
		ctx := t.Context()
		cas := func(key, val string, idx uint64) bool {
			t.Helper()
			ok, err := kv.CAS(ctx, key, []byte(val), idx)
			must(t, err)
			return ok
		}
		if !cas("c/k", "v1", 0) {
			t.Fatal("CAS index 0 on a missing key failed")
		}
		if cas("c/k", "v2", 0) {
			t.Fatal("CAS index 0 on an existing key succeeded")
		}
		p := get(t, kv, "c/k")
		if string(p.Value) != "v1" {
			t.Fatalf("value = %q, want v1", p.Value)
		}
		if cas("c/k", "v2", p.ModifyIndex+1000) {
			t.Fatal("CAS with a wrong index succeeded")
		}
		if !cas("c/k", "v2", p.ModifyIndex) {
			t.Fatal("CAS with the current index failed")
		}
		if cas("c/k", "v3", p.ModifyIndex) {
			t.Fatal("CAS with a stale index succeeded")
		}
		if got := get(t, kv, "c/k"); string(got.Value) != "v2" || got.ModifyIndex <= p.ModifyIndex {
			t.Fatalf("after CAS: %+v", got)
		}
		if cas("c/missing", "v", 5) {
			t.Fatal("CAS with an index on a missing key succeeded")
		}
	})

	t.Run("IndexesIncrease", func(t *testing.T) {
		t.Parallel()
		kv := newKV(t)
		ctx := t.Context()
		var last uint64
		for i, k := range []string{"i/a", "i/b", "i/a", "i/c", "i/b"} {
			// Distinct values: Consul skips a write that changes nothing.
			must(t, kv.Put(ctx, k, []byte{byte('0' + i)}))
			idx := get(t, kv, k).ModifyIndex
			if idx <= last {
				t.Fatalf("ModifyIndex of %s = %d, not above the previous write's %d", k, idx, last)
			}
			last = idx
		}
		_, idx, err := kv.List(ctx, "i/", 0, 0)
		must(t, err)
		if idx < last {
			t.Fatalf("List index %d below the last write %d", idx, last)
		}
	})

	t.Run("BlockingList", func(t *testing.T) {
		t.Parallel()
		kv := newKV(t)
		ctx := t.Context()
		must(t, kv.Put(ctx, "b/a", []byte("a")))
		_, idx, err := kv.List(ctx, "b/", 0, 0)
		must(t, err)

		t.Run("WakesOnPut", func(t *testing.T) {
			go func() { _ = kv.Put(context.WithoutCancel(ctx), "b/x", []byte("x")) }()
			pairs, next, err := kv.List(ctx, "b/", idx, patience)
			must(t, err)
			equal(t, "keys", keys(pairs), []string{"b/a", "b/x"})
			if next <= idx {
				t.Fatalf("index %d did not move past %d", next, idx)
			}
			idx = next
		})
		t.Run("WakesOnDelete", func(t *testing.T) {
			go func() { _ = kv.Delete(context.WithoutCancel(ctx), "b/x") }()
			pairs, next, err := kv.List(ctx, "b/", idx, patience)
			must(t, err)
			equal(t, "keys", keys(pairs), []string{"b/a"})
			if next <= idx {
				t.Fatalf("index %d did not move past %d", next, idx)
			}
			idx = next
		})
		t.Run("TimesOutWithoutError", func(t *testing.T) {
			must(t, kv.Put(ctx, "other/y", []byte("y"))) // outside the prefix
			pairs, next, err := kv.List(ctx, "b/", idx, 300*time.Millisecond)
			must(t, err)
			equal(t, "keys", keys(pairs), []string{"b/a"})
			if next < idx {
				t.Fatalf("index went back from %d to %d", idx, next)
			}
		})
		t.Run("EndsWithContext", func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			go cancel()
			if _, _, err := kv.List(cctx, "b/", idx, patience); err == nil {
				// A backend may have answered before the cancel landed
				// only if something changed; nothing did.
				t.Fatal("List returned no error after its context ended")
			}
		})
	})

	t.Run("SessionLocks", func(t *testing.T) {
		t.Parallel()
		kv := newKV(t)
		ctx := t.Context()
		s1 := newSession(t, kv, LongTTL, coord.BehaviorRelease)
		s2 := newSession(t, kv, LongTTL, coord.BehaviorRelease)
		if s1 == s2 {
			t.Fatal("two sessions share an id")
		}
		acquire := func(val, sess string) bool {
			t.Helper()
			ok, err := kv.Acquire(ctx, "s/lock", []byte(val), sess)
			must(t, err)
			return ok
		}
		release := func(sess string) bool {
			t.Helper()
			ok, err := kv.Release(ctx, "s/lock", sess)
			must(t, err)
			return ok
		}
		if !acquire("a", s1) {
			t.Fatal("first Acquire failed")
		}
		p := get(t, kv, "s/lock")
		if p.Session != s1 || p.LockIndex != 1 || string(p.Value) != "a" {
			t.Fatalf("after Acquire: %+v", p)
		}
		if acquire("b", s2) {
			t.Fatal("Acquire by another session succeeded while held")
		}
		if got := get(t, kv, "s/lock"); string(got.Value) != "a" || got.Session != s1 {
			t.Fatalf("failed Acquire changed the key: %+v", got)
		}
		if !acquire("c", s1) {
			t.Fatal("Acquire by the holder failed")
		}
		if got := get(t, kv, "s/lock"); got.LockIndex != 1 || string(got.Value) != "c" {
			t.Fatalf("re-acquire by the holder: %+v", got)
		}
		if release(s2) {
			t.Fatal("Release by a non-holder succeeded")
		}
		if !release(s1) {
			t.Fatal("Release by the holder failed")
		}
		if got := get(t, kv, "s/lock"); got.Session != "" || string(got.Value) != "c" {
			t.Fatalf("after Release: %+v", got)
		}
		if !acquire("d", s2) {
			t.Fatal("Acquire after Release failed")
		}
		if got := get(t, kv, "s/lock"); got.Session != s2 || got.LockIndex != 2 {
			t.Fatalf("second holder: %+v", got)
		}
		if ok, err := kv.Release(ctx, "s/missing", s1); err != nil || ok {
			t.Fatalf("Release of a missing key = %v, %v", ok, err)
		}
		must(t, kv.RenewSession(ctx, s2))
	})

	t.Run("DestroySession", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			behavior coord.Behavior
			kept     bool
		}{
			{coord.BehaviorRelease, true},
			{coord.BehaviorDelete, false},
		}
		kv := newKV(t)
		ctx := t.Context()
		for _, tt := range tests {
			t.Run(string(tt.behavior), func(t *testing.T) {
				key := "d/" + string(tt.behavior)
				sess := newSession(t, kv, LongTTL, tt.behavior)
				ok, err := kv.Acquire(ctx, key, []byte("v"), sess)
				must(t, err)
				if !ok {
					t.Fatal("Acquire failed")
				}
				must(t, kv.DestroySession(ctx, sess))
				if tt.kept {
					if p := get(t, kv, key); p.Session != "" {
						t.Fatalf("key still held after destroy: %+v", p)
					}
				} else if !absent(t, kv, key) {
					t.Fatal("key still there after destroying its delete-session")
				}
				if err := kv.RenewSession(ctx, sess); !errors.Is(err, coord.ErrSessionInvalid) {
					t.Fatalf("Renew after destroy: err = %v, want ErrSessionInvalid", err)
				}
				if _, err := kv.Acquire(ctx, key, []byte("v"), sess); !errors.Is(err, coord.ErrSessionInvalid) {
					t.Fatalf("Acquire with a destroyed session: err = %v, want ErrSessionInvalid", err)
				}
			})
		}
	})

	t.Run("RenewKeepsSession", func(t *testing.T) {
		t.Parallel()
		kv := newKV(t)
		ctx := t.Context()
		sess := newSession(t, kv, SessionTTL, coord.BehaviorDelete)
		ok, err := kv.Acquire(ctx, "r/k", nil, sess)
		must(t, err)
		if !ok {
			t.Fatal("Acquire failed")
		}
		// Renew often (every TTL/5) for longer than the TTL.
		for range 8 {
			time.Sleep(SessionTTL / 5)
			must(t, kv.RenewSession(ctx, sess))
		}
		if p := get(t, kv, "r/k"); p.Session != sess {
			t.Fatalf("renewed session lost its key: %+v", p)
		}
		must(t, kv.DestroySession(ctx, sess))
	})

	t.Run("TTLExpiry", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			behavior coord.Behavior
			kept     bool
		}{
			{coord.BehaviorRelease, true},
			{coord.BehaviorDelete, false},
		}
		kv := newKV(t)
		ctx := t.Context()
		for _, tt := range tests {
			t.Run(string(tt.behavior), func(t *testing.T) {
				t.Parallel()
				key := "x/" + string(tt.behavior)
				sess := newSession(t, kv, SessionTTL, tt.behavior)
				ok, err := kv.Acquire(ctx, key, []byte("v"), sess)
				must(t, err)
				if !ok {
					t.Fatal("Acquire failed")
				}
				// Poll the key, not the session: renewing would keep it alive.
				eventually(t, "the session expires", func() bool {
					if !tt.kept {
						return absent(t, kv, key)
					}
					return get(t, kv, key).Session == ""
				})
				if tt.kept {
					if p := get(t, kv, key); string(p.Value) != "v" {
						t.Fatalf("after expiry: %+v", p)
					}
				}
				if err := kv.RenewSession(ctx, sess); !errors.Is(err, coord.ErrSessionInvalid) {
					t.Fatalf("Renew after expiry: err = %v, want ErrSessionInvalid", err)
				}
			})
		}
	})
}
