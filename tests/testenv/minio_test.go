package testenv

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestMinIO(t *testing.T) {
	ep := MinIO(t)
	ctx := t.Context()
	b1, b2 := ep.NewBucket(t), ep.NewBucket(t)
	if b1 == b2 {
		t.Fatalf("NewBucket returned %q twice", b1)
	}
	if again := MinIO(t); again != ep {
		t.Fatalf("second MinIO call = %+v, want the same server %+v", again, ep)
	}

	// Keys that need escaping in the path and in the signature.
	keys := []string{"plain", "dir/a b+c~(1)=.txt", "ünï/cødé"}
	for _, k := range keys {
		if _, err := ep.do(ctx, http.MethodPut, "/"+b1+"/"+k, nil, []byte("v:"+k)); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
		got, err := ep.do(ctx, http.MethodGet, "/"+b1+"/"+k, nil, nil)
		if err != nil || string(got) != "v:"+k {
			t.Fatalf("get %q = %q, %v", k, got, err)
		}
	}
	list, err := ep.do(ctx, http.MethodGet, "/"+b1, url.Values{"list-type": {"2"}, "prefix": {"dir/"}}, nil)
	if err != nil || !strings.Contains(string(list), "a b+c~(1)=.txt") {
		t.Fatalf("list with a prefix = %s, %v", list, err)
	}

	if err := ep.removeBucket(ctx, b1); err != nil {
		t.Fatalf("removeBucket: %v", err)
	}
	if _, err := ep.do(ctx, http.MethodGet, "/"+b1, url.Values{"list-type": {"2"}}, nil); err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("list of a removed bucket = %v, want NoSuchBucket", err)
	}
	if err := ep.removeBucket(ctx, b1); err != nil {
		t.Fatalf("removeBucket of a missing bucket: %v", err)
	}

	bad := ep
	bad.SecretKey = "not-the-secret"
	if _, err := bad.do(ctx, http.MethodGet, "/"+b2, url.Values{"list-type": {"2"}}, nil); err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("request with a wrong secret = %v, want SignatureDoesNotMatch", err)
	}
}

func TestS3Escape(t *testing.T) {
	tests := []struct {
		in       string
		all      bool
		want     string
		wantPath string
	}{
		{in: "a/b-c_d.e~f", want: "a%2Fb-c_d.e~f", wantPath: "a/b-c_d.e~f"},
		{in: "a b+c=d", want: "a%20b%2Bc%3Dd", wantPath: "a%20b%2Bc%3Dd"},
		{in: "é", want: "%C3%A9", wantPath: "%C3%A9"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := s3Escape(tt.in, true); got != tt.want {
				t.Errorf("s3Escape(%q, true) = %q, want %q", tt.in, got, tt.want)
			}
			if got := s3Escape(tt.in, false); got != tt.wantPath {
				t.Errorf("s3Escape(%q, false) = %q, want %q", tt.in, got, tt.wantPath)
			}
		})
	}
	if got := s3Query(url.Values{"b": {"2"}, "a": {"x y", "1"}}); got != "a=1&a=x%20y&b=2" {
		t.Errorf("s3Query = %q", got)
	}
}
