package isolate

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		input, base string
		want        urlParts
		err         bool
	}{
		{input: "http://Example.com", want: urlParts{Href: "http://example.com/", Origin: "http://example.com", Protocol: "http:", Hostname: "example.com", Pathname: "/"}},
		{input: "https://a.example:443/x/../y?q=1#f", want: urlParts{Href: "https://a.example/y?q=1#f", Origin: "https://a.example", Protocol: "https:", Hostname: "a.example", Pathname: "/y", Search: "?q=1", Hash: "#f"}},
		{input: "http://a.example:8080/%7Efoo", want: urlParts{Href: "http://a.example:8080/%7Efoo", Origin: "http://a.example:8080", Protocol: "http:", Hostname: "a.example", Port: "8080", Pathname: "/%7Efoo"}},
		{input: "b/c", base: "http://a.example/x/y", want: urlParts{Href: "http://a.example/x/b/c", Origin: "http://a.example", Protocol: "http:", Hostname: "a.example", Pathname: "/x/b/c"}},
		{input: "http://2130706433/", want: urlParts{Href: "http://127.0.0.1/", Origin: "http://127.0.0.1", Protocol: "http:", Hostname: "127.0.0.1", Pathname: "/"}},
		{input: "http://0x7f.1/", want: urlParts{Href: "http://127.0.0.1/", Origin: "http://127.0.0.1", Protocol: "http:", Hostname: "127.0.0.1", Pathname: "/"}},
		{input: "http://0177.0.0.1/", want: urlParts{Href: "http://127.0.0.1/", Origin: "http://127.0.0.1", Protocol: "http:", Hostname: "127.0.0.1", Pathname: "/"}},
		{input: "mailto:a@b.example", want: urlParts{Href: "mailto:a@b.example", Origin: "null", Protocol: "mailto:", Pathname: "a@b.example"}},
		{input: "  http://a.example/\t ", want: urlParts{Href: "http://a.example/", Origin: "http://a.example", Protocol: "http:", Hostname: "a.example", Pathname: "/"}},
		{input: "http://256.256.256.256.1/", err: true},
		{input: "http://1.2.3.4.5/", err: true},
		{input: "/relative", err: true},
		{input: "http://", err: true},
		{input: "http://a.example:99999/", err: true},
		{input: "x", base: "relative", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			b, err := parseURL(tt.input, tt.base, tt.base != "")
			if tt.err {
				if err == nil {
					t.Fatalf("got %s, want an error", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got urlParts
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
