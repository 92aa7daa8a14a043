package coord

import (
	"strings"
	"testing"
	"time"
)

func TestCheckID(t *testing.T) {
	tests := []struct {
		name, id string
		ok       bool
	}{
		{"plain", "dpl_01HZX", true},
		{"dots and dashes", "preview-feature.x", true},
		{"empty", "", false},
		{"slash", "a/b", false},
		{"parent", "..", true}, // one segment; harmless in a KV key
		{"newline", "a\nb", false},
		{"too long", strings.Repeat("x", 257), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkID("id", tt.id); (err == nil) != tt.ok {
				t.Fatalf("checkID(%q) = %v, want ok %v", tt.id, err, tt.ok)
			}
		})
	}
}

func TestDecodePointer(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	val := mustJSON(pointerValue{ProjectName: "Shop", DeploymentID: "d1", UpdatedAt: at})
	tests := []struct {
		name string
		pair Pair
		want *Pointer
	}{
		{"pointer", Pair{Key: pointerKey("p1", "production"), Value: val, ModifyIndex: 7},
			&Pointer{ProjectID: "p1", ProjectName: "Shop", Environment: "production", DeploymentID: "d1", UpdatedAt: at, ModifyIndex: 7}},
		{"no environment", Pair{Key: "pier/projects/p1", Value: val}, nil},
		{"nested", Pair{Key: "pier/projects/p1/a/b", Value: val}, nil},
		{"garbage", Pair{Key: pointerKey("p1", "production"), Value: []byte("{")}, nil},
		{"other tree", Pair{Key: "pier/wanted/d1", Value: val}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := decodePointer(&tt.pair)
			if ok != (tt.want != nil) || (ok && got != *tt.want) {
				t.Fatalf("decodePointer = %+v, %v; want %+v", got, ok, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{base: time.Second, limit: 5 * time.Second}
	var got []time.Duration
	for range 5 {
		got = append(got, b.next())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff = %v, want %v", got, want)
		}
	}
	b.reset()
	if d := b.next(); d != time.Second {
		t.Fatalf("after reset: %v", d)
	}
}
