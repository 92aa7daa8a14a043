package isolate

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFastMeta: the reflection-free reader of response records agrees
// with encoding/json on what JSON.stringify writes, and declines anything
// else (which decodeMeta then reads with encoding/json).
func TestFastMeta(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		fast bool // fastMeta reads it
	}{
		{"no headers", `{"status":204,"statusText":"","headers":[]}`, true},
		{"headers", `{"status":200,"statusText":"OK","headers":[["content-type","text/html; charset=utf-8"],["set-cookie","a=1"],["set-cookie","b=2"]]}`, true},
		{"escapes", `{"status":200,"statusText":"a\"b","headers":[["x-a","q\"uote \\ back\nnl \u00e9 \ud83d\ude00"],["x-b","\\"]]}`, true},
		{"raw utf-8", `{"status":200,"statusText":"","headers":[["x-a","é😀"]]}`, true},
		{"spaces", `{"status": 200, "statusText": "", "headers": []}`, false},
		{"other order", `{"headers":[],"status":200,"statusText":""}`, false},
		{"truncated", `{"status":200,"statusText":"","headers":[["a","b"]`, false},
		{"unterminated string", `{"status":200,"statusText":"x`, false},
		{"not a pair", `{"status":200,"statusText":"","headers":[["a"]]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := fastMeta(tt.raw)
			if ok != tt.fast {
				t.Fatalf("fastMeta ok = %v, want %v", ok, tt.fast)
			}
			var meta struct {
				Status  int         `json:"status"`
				Headers [][2]string `json:"headers"`
			}
			if err := json.Unmarshal([]byte(tt.raw), &meta); err != nil {
				if tt.fast {
					t.Fatalf("encoding/json rejects what fastMeta read: %v", err)
				}
				if _, err := decodeMeta(tt.raw); err == nil {
					t.Error("decodeMeta accepted invalid JSON")
				}
				return
			}
			want := &Response{Status: meta.Status, Header: http.Header{}}
			for _, h := range meta.Headers {
				want.Header.Add(h[0], h[1])
			}
			if ok {
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("fastMeta differs from encoding/json (-json +fast):\n%s", diff)
				}
			}
			dec, err := decodeMeta(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, dec); diff != "" {
				t.Errorf("decodeMeta (-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkDecodeMeta(b *testing.B) {
	raw := `{"status":200,"statusText":"","headers":[["content-type","text/html; charset=utf-8"]]}`
	for b.Loop() {
		if _, err := decodeMeta(raw); err != nil {
			b.Fatal(err)
		}
	}
}
