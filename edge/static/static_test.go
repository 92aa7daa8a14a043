package static_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/cache"
	"github.com/pierhq/pier/edge/cache/cachetest"
	"github.com/pierhq/pier/edge/static"
)

var _ static.Files = (*cache.Cache)(nil)

var home = strings.Repeat("<h1>home</h1>", 20)

var siteFiles = map[string]cachetest.File{
	"index.html":                       {Body: home, Compress: true},
	"about.html":                       {Body: "about page"},
	"docs/index.html":                  {Body: "docs index"},
	"blog/post/index.html":             {Body: "a post"},
	"assets/index-BwD3k9aQ.js":         {Body: strings.Repeat("console.log(1);", 50), Compress: true},
	"assets/main.3f2a9c1e.css":         {Body: "body{}"},
	"_next/static/chunks/app.js":       {Body: "next chunk"},
	"logo.png":                         {Body: "\x89PNG fake", Type: "image/png"},
	"weird.bin":                        {Body: "custom", Type: "application/x-custom"},
	"404.html":                         {Body: "custom not found page"},
	"dir.with.dots/index.html":         {Body: "dotted dir"},
	"assets/only-identity-a1b2c3d4.js": {Body: "identity only"},
}

// fixture publishes dep into a directory object store and syncs it into a
// real cache, the way the edge does.
func fixture(t *testing.T, dep cachetest.Deployment, sync bool) (*edge.Manifest, *cache.Cache, *httptest.Server) {
	t.Helper()
	src := cachetest.NewDir(t)
	m := src.Publish(t, dep)
	c, err := cache.New(cache.Config{Dir: t.TempDir()}, src)
	if err != nil {
		t.Fatal(err)
	}
	if sync {
		if _, err := c.Sync(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		static.Serve(w, r, m, c)
	}))
	t.Cleanup(srv.Close)
	return m, c, srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, srv *httptest.Server, method, target string, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// No transparent gzip: the test sees exactly what the server sent.
	cl := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	res, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, string(b)}
}

func decode(t *testing.T, enc, body string) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(strings.NewReader(body))
	default:
		t.Fatalf("unexpected encoding %q", enc)
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		t.Fatalf("decode %s: %v", enc, err)
	}
	return b.String()
}

func TestServe(t *testing.T) {
	m, _, srv := fixture(t, cachetest.Deployment{
		ID: "dpl-a", ProjectID: "prj-1", ProjectName: "app", NotFound: "404.html", Files: siteFiles,
	}, true)
	etag := func(name string) string { return `"` + m.Files[name].SHA256 + `"` }
	idx := m.Files["index.html"]
	const (
		immutable   = static.CacheImmutable
		revalidate  = static.CacheRevalidate
		html        = "text/html; charset=utf-8"
		absent      = "<absent>"
		anyNonEmpty = "<any>"
	)

	tests := []struct {
		name   string
		method string // default GET
		target string
		hdr    map[string]string
		status int
		body   string            // decoded per Content-Encoding; "" with status 304/HEAD
		want   map[string]string // header -> value; absent / anyNonEmpty
	}{
		// Resolution.
		{name: "root", target: "/", status: 200, body: home, want: map[string]string{
			"Content-Type": html, "Cache-Control": revalidate, "ETag": etag("index.html"),
			"X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding", "Content-Encoding": absent,
		}},
		{name: "index by name", target: "/index.html", status: 200, body: home},
		{name: "pretty url", target: "/about", status: 200, body: "about page", want: map[string]string{"ETag": etag("about.html"), "Vary": absent}},
		{name: "exact html", target: "/about.html", status: 200, body: "about page"},
		{name: "directory no slash", target: "/docs", status: 200, body: "docs index"},
		{name: "directory slash", target: "/docs/", status: 200, body: "docs index"},
		{name: "nested directory", target: "/blog/post", status: 200, body: "a post"},
		{name: "dotted directory", target: "/dir.with.dots/", status: 200, body: "dotted dir"},
		{name: "slash on a file is not a directory", target: "/about/", status: 404, body: "custom not found page"},
		{name: "query ignored", target: "/about?x=1", status: 200, body: "about page"},
		{name: "dot segment", target: "/./docs/./", status: 200, body: "docs index"},
		{name: "double slash stays inside", target: "//docs//", status: 200, body: "docs index"},

		// Methods.
		{name: "head", method: "HEAD", target: "/", status: 200, want: map[string]string{
			"Content-Length": "260", "ETag": etag("index.html"),
		}},
		{name: "post", method: "POST", target: "/", status: 405, body: "method not allowed\n", want: map[string]string{"Allow": "GET, HEAD"}},
		{name: "delete", method: "DELETE", target: "/about", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},
		{name: "options", method: "OPTIONS", target: "/", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},

		// Traversal and hostile paths.
		{name: "dotdot", target: "/../etc/passwd", status: 400},
		{name: "inner dotdot", target: "/assets/../../etc/passwd", status: 400},
		{name: "dotdot that cleans inside", target: "/docs/../about", status: 400},
		{name: "encoded dotdot", target: "/%2e%2e/etc/passwd", status: 400},
		{name: "encoded upper dotdot", target: "/assets/%2E%2E/%2E%2E/index.html", status: 400},
		{name: "encoded slash dotdot", target: "/..%2f..%2fetc%2fpasswd", status: 400},
		{name: "backslash", target: "/assets%5c..%5c..%5cindex.html", status: 400},
		{name: "nul", target: "/index.html%00.png", status: 400},
		{name: "double encoded is a name", target: "/%252e%252e/index.html", status: 404, body: "custom not found page"},
		{name: "absolute elsewhere", target: "/etc/passwd", status: 404},

		// Conditional requests.
		{name: "if-none-match hit", target: "/", hdr: map[string]string{"If-None-Match": etag("index.html")}, status: 304,
			want: map[string]string{"ETag": etag("index.html"), "Content-Length": absent}},
		{name: "if-none-match list", target: "/about", hdr: map[string]string{"If-None-Match": `"x", ` + etag("about.html")}, status: 304},
		{name: "if-none-match star", target: "/about", hdr: map[string]string{"If-None-Match": "*"}, status: 304},
		{name: "if-none-match stale", target: "/about", hdr: map[string]string{"If-None-Match": `"` + strings.Repeat("0", 64) + `"`}, status: 200, body: "about page"},
		{name: "if-none-match weak matches", target: "/about", hdr: map[string]string{"If-None-Match": "W/" + etag("about.html")}, status: 304},

		// Ranges.
		{name: "range", target: "/", hdr: map[string]string{"Range": "bytes=0-3"}, status: 206, body: "<h1>",
			want: map[string]string{"Content-Range": "bytes 0-3/260", "ETag": etag("index.html")}},
		{name: "range gets identity", target: "/", hdr: map[string]string{"Range": "bytes=4-7", "Accept-Encoding": "br, gzip"}, status: 206, body: "home",
			want: map[string]string{"Content-Encoding": absent, "Vary": "Accept-Encoding"}},
		{name: "if-range current", target: "/", hdr: map[string]string{"Range": "bytes=0-3", "If-Range": etag("index.html")}, status: 206, body: "<h1>"},
		{name: "if-range stale", target: "/", hdr: map[string]string{"Range": "bytes=0-3", "If-Range": `"old"`}, status: 200, body: home},
		{name: "range unsatisfiable", target: "/about", hdr: map[string]string{"Range": "bytes=100-200"}, status: 416},

		// Content negotiation.
		{name: "br preferred", target: "/", hdr: map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": "br", "Vary": "Accept-Encoding", "ETag": `"` + idx.Brotli.SHA256 + `"`, "Content-Length": itoa(idx.Brotli.Size)}},
		{name: "gzip only", target: "/", hdr: map[string]string{"Accept-Encoding": "gzip"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": "gzip", "ETag": `"` + idx.Gzip.SHA256 + `"`, "Content-Length": itoa(idx.Gzip.Size)}},
		{name: "br q=0", target: "/", hdr: map[string]string{"Accept-Encoding": "br;q=0, gzip"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": "gzip"}},
		{name: "all q=0", target: "/", hdr: map[string]string{"Accept-Encoding": "gzip;q=0, br;q=0"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": absent, "ETag": etag("index.html")}},
		{name: "higher q wins", target: "/", hdr: map[string]string{"Accept-Encoding": "br;q=0.5, gzip;q=1"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": "gzip"}},
		{name: "star", target: "/", hdr: map[string]string{"Accept-Encoding": "*"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": "br"}},
		{name: "star q=0", target: "/", hdr: map[string]string{"Accept-Encoding": "*;q=0"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": absent}},
		{name: "star but br refused", target: "/", hdr: map[string]string{"Accept-Encoding": "br;q=0, *"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": "gzip"}},
		{name: "identity only", target: "/", hdr: map[string]string{"Accept-Encoding": "identity"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": absent}},
		{name: "case insensitive", target: "/", hdr: map[string]string{"Accept-Encoding": "GZIP"}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": "gzip"}},
		{name: "no variants", target: "/about", hdr: map[string]string{"Accept-Encoding": "br, gzip"}, status: 200, body: "about page",
			want: map[string]string{"Content-Encoding": absent, "Vary": absent}},
		{name: "variant etag 304", target: "/", hdr: map[string]string{"Accept-Encoding": "br", "If-None-Match": `"` + idx.Brotli.SHA256 + `"`}, status: 304},
		{name: "identity etag is not the variant's", target: "/", hdr: map[string]string{"Accept-Encoding": "br", "If-None-Match": etag("index.html")}, status: 200, body: home,
			want: map[string]string{"Content-Encoding": "br"}},
		{name: "head br", method: "HEAD", target: "/", hdr: map[string]string{"Accept-Encoding": "br"}, status: 200,
			want: map[string]string{"Content-Encoding": "br", "Content-Length": itoa(idx.Brotli.Size)}},

		// Cache-Control and Content-Type.
		{name: "vite asset", target: "/assets/index-BwD3k9aQ.js", status: 200, body: strings.Repeat("console.log(1);", 50),
			want: map[string]string{"Cache-Control": immutable, "Content-Type": "text/javascript; charset=utf-8"}},
		{name: "vite asset br", target: "/assets/index-BwD3k9aQ.js", hdr: map[string]string{"Accept-Encoding": "br"}, status: 200, body: strings.Repeat("console.log(1);", 50),
			want: map[string]string{"Cache-Control": immutable, "Content-Encoding": "br"}},
		{name: "webpack asset", target: "/assets/main.3f2a9c1e.css", status: 200, body: "body{}",
			want: map[string]string{"Cache-Control": immutable, "Content-Type": "text/css; charset=utf-8"}},
		{name: "next static", target: "/_next/static/chunks/app.js", status: 200, body: "next chunk", want: map[string]string{"Cache-Control": immutable}},
		{name: "plain asset", target: "/logo.png", status: 200, body: "\x89PNG fake",
			want: map[string]string{"Cache-Control": revalidate, "Content-Type": "image/png"}},
		{name: "type from manifest", target: "/weird.bin", status: 200, body: "custom",
			want: map[string]string{"Content-Type": "application/x-custom", "X-Content-Type-Options": "nosniff"}},

		// Not found.
		{name: "custom 404", target: "/missing", status: 404, body: "custom not found page",
			want: map[string]string{"Content-Type": html, "Cache-Control": revalidate, "ETag": absent}},
		{name: "custom 404 asset", target: "/missing.js", status: 404, body: "custom not found page"},
		{name: "custom 404 head", method: "HEAD", target: "/missing", status: 404, want: map[string]string{"Content-Length": "21"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			res := do(t, srv, method, tt.target, tt.hdr)
			if res.status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", res.status, tt.status, res.body)
			}
			if tt.body != "" {
				if got := decode(t, res.header.Get("Content-Encoding"), res.body); got != tt.body {
					t.Errorf("body = %q, want %q", got, tt.body)
				}
			}
			if (method == "HEAD" || tt.status == 304) && res.body != "" {
				t.Errorf("body = %q, want none", res.body)
			}
			for k, want := range tt.want {
				got, ok := res.header[http.CanonicalHeaderKey(k)]
				switch {
				case want == absent && ok:
					t.Errorf("%s = %q, want absent", k, got)
				case want == absent:
				case want == anyNonEmpty && !ok:
					t.Errorf("%s absent", k)
				case want != anyNonEmpty && strings.Join(got, ", ") != want:
					t.Errorf("%s = %q, want %q", k, strings.Join(got, ", "), want)
				}
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestFallbacks(t *testing.T) {
	files := map[string]cachetest.File{
		"index.html":               {Body: "spa shell"},
		"assets/index-BwD3k9aQ.js": {Body: "js"},
		"about.html":               {Body: "about"},
	}
	tests := []struct {
		name     string
		spa      bool
		notFound string
		extra    map[string]cachetest.File
		target   string
		status   int
		body     string
	}{
		{name: "spa route", spa: true, target: "/users/42", status: 200, body: "spa shell"},
		{name: "spa route slash", spa: true, target: "/users/42/", status: 200, body: "spa shell"},
		{name: "spa real file wins", spa: true, target: "/about", status: 200, body: "about"},
		{name: "spa missing asset is 404", spa: true, target: "/assets/gone-Zx9Yw8Vu.js", status: 404, body: "not found\n"},
		{name: "spa missing asset custom 404", spa: true, notFound: "404.html", extra: map[string]cachetest.File{"404.html": {Body: "nf"}},
			target: "/favicon.ico", status: 404, body: "nf"},
		{name: "spa dotted segment", spa: true, target: "/v1.2/x.y", status: 404},
		{name: "no spa plain 404", target: "/users/42", status: 404, body: "not found\n"},
		{name: "no spa custom 404", notFound: "404.html", extra: map[string]cachetest.File{"404.html": {Body: "nf"}},
			target: "/users/42", status: 404, body: "nf"},
		{name: "spa traversal still 400", spa: true, target: "/%2e%2e/x", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := map[string]cachetest.File{}
			for k, v := range files {
				fs[k] = v
			}
			for k, v := range tt.extra {
				fs[k] = v
			}
			_, _, srv := fixture(t, cachetest.Deployment{ID: "dpl-s", ProjectID: "p", ProjectName: "spa",
				SPA: tt.spa, NotFound: tt.notFound, Files: fs}, true)
			res := do(t, srv, "GET", tt.target, nil)
			if res.status != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", res.status, tt.status, res.body)
			}
			if tt.body != "" && res.body != tt.body {
				t.Errorf("body = %q, want %q", res.body, tt.body)
			}
			if res.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff")
			}
		})
	}
}

func TestUnsyncedBlobIs503(t *testing.T) {
	_, _, srv := fixture(t, cachetest.Deployment{ID: "dpl-u", Files: map[string]cachetest.File{"index.html": {Body: "x"}}}, false)
	res := do(t, srv, "GET", "/", nil)
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", res.status)
	}
	if res.header.Get("ETag") != "" || res.header.Get("Cache-Control") != "" {
		t.Errorf("error response carries validators: %v", res.header)
	}
}

func TestLookup(t *testing.T) {
	m, _ := cachetest.Build(cachetest.Deployment{ID: "dpl-l", SPA: true, Files: siteFiles})
	tests := []struct {
		path string
		want string // "" means not found
	}{
		{"/", "index.html"},
		{"/about", "about.html"},
		{"/docs/", "docs/index.html"},
		{"/assets/index-BwD3k9aQ.js", "assets/index-BwD3k9aQ.js"},
		{"/users/42", ""}, // no SPA fallback in Lookup
		{"/../about", ""},
		{"/a\\b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := static.Lookup(m, tt.path)
			if !ok {
				got = ""
			}
			if got != tt.want {
				t.Errorf("Lookup(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestHashed(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"assets/index-BwD3k9aQ.js", true},        // vite / rollup
		{"assets/index-BwD3k9aQ.css", true},       //
		{"assets/vendor-react-Cq9_x2Lm.js", true}, // base64url with underscore
		{"assets/index-BwD3k9aQ.js.map", true},
		{"assets/index-DwfqKpTh.js", true},      // vite hash without digits
		{"assets/index-C-a_bQxy.css", true},     // '-' inside the hash
		{"assets/logo-small.svg", false},        // not a hash: too short
		{"assets/sub/index-DwfqKpTh.js", false}, // vite keeps assets flat
		{"_app/immutable/entry/start.js", true}, // sveltekit
		{"static/js/main.3f2a9c1e.js", true},    // webpack / CRA
		{"static/js/787.3f2a9c1e.chunk.js", true},
		{"main.7a8b9c0d1e2f3a4b.js", true},   // angular
		{"main-5XCYBBXV.js", true},           // esbuild
		{"index.7f8e9a2b.js", true},          // parcel
		{"_next/static/chunks/app.js", true}, // next
		{"_next/static/abc/_buildManifest.js", true},
		{"index.html", false},
		{"about.html", false},
		{"favicon.ico", false},
		{"robots.txt", false},
		{"logo192.png", false},
		{"bootstrap5.js", false},
		{"jquery-3.7.1.min.js", false},
		{"photo-20240101.jpg", false},
		{"my-component.js", false},
		{"vendor-chunkvendors2.js", false}, // word-like token
		{"assets/noextensionBwD3k9aQ", false},
		{"deadbeef.js", false},
		{"_next/image", false},
		{"next/static/a.js", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := static.Hashed(tt.name); got != tt.want {
				t.Errorf("Hashed(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
