package isolate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fetcher is a deployment that fetches ?u= and reports the outcome.
const fetcherScript = `
export default { async fetch(req) {
  const q = new URL(req.url).searchParams;
  const init = q.has("init") ? JSON.parse(q.get("init")) : undefined;
  try {
    const r = await fetch(q.get("u"), init);
    return Response.json({status: r.status, text: await r.text(), type: r.headers.get("content-type"), url: r.url, redirected: r.redirected});
  } catch (e) {
    return Response.json({error: e.name + ": " + e.message}, {status: 502});
  }
} };`

func fetchVia(t *testing.T, r *Runtime, target, init string) map[string]any {
	t.Helper()
	u := "http://edge.example/?u=" + queryEscape(target)
	if init != "" {
		u += "&init=" + queryEscape(init)
	}
	res := mustServe(t, r, "GET", u, "")
	var out map[string]any
	if err := json.Unmarshal(res.Body, &out); err != nil {
		t.Fatalf("%s: %v", res.Body, err)
	}
	return out
}

func queryEscape(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "#", "%23", " ", "%20").Replace(s)
}

// TestFetchRefused: loopback, private, link-local (metadata) and other
// reserved destinations are refused after DNS resolution, even when a
// server is listening there.
func TestFetchRefused(t *testing.T) {
	var hits int
	srv := localServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	cfg := testConfig(t, nil)
	cfg.Fetch.Timeout = 2 * time.Second
	r := start(t, cfg, fetcherScript, nil)
	notAllowed := "TypeError: fetch failed: destination address not allowed (private, loopback, link-local or reserved)"
	tests := []struct{ name, url, want string }{
		{"loopback", srv.URL, notAllowed},
		{"localhost name", fmt.Sprintf("http://localhost:%d/", port), notAllowed},
		{"ipv6 loopback", fmt.Sprintf("http://[::1]:%d/", port), notAllowed},
		{"ipv4-mapped loopback", fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port), notAllowed},
		{"unspecified", fmt.Sprintf("http://0.0.0.0:%d/", port), notAllowed},
		{"metadata", "http://169.254.169.254/latest/meta-data/", notAllowed},
		{"private 10/8", "http://10.0.0.1/", notAllowed},
		{"private 192.168", "http://192.168.1.1/", notAllowed},
		{"cgnat metadata", "http://100.100.100.200/", notAllowed},
		{"decimal loopback", fmt.Sprintf("http://2130706433:%d/", port), notAllowed},
		{"file", "file:///etc/passwd", "TypeError: fetch failed: only http and https URLs can be fetched, not file"},
		{"data", "data:text/plain,hi", "TypeError: fetch failed: only http and https URLs can be fetched, not data"},
		{"relative", "/x", `TypeError: Invalid URL: "/x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fetchVia(t, r, tt.url, "")
			if got["error"] != tt.want {
				t.Errorf("got %v, want error %q", got, tt.want)
			}
		})
	}

	// A redirect is dialed through the same check: with 127.0.0.1 allowed,
	// a redirect from it to [::1] is still refused.
	cfg.Fetch.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	allowV4 := start(t, cfg, fetcherScript, nil)
	t.Run("redirect to refused", func(t *testing.T) {
		red := localServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, fmt.Sprintf("http://[::1]:%d/", port), http.StatusFound)
		}))
		if got := fetchVia(t, allowV4, red.URL, ""); got["error"] != notAllowed {
			t.Errorf("got %v", got)
		}
	})
	if hits != 0 {
		t.Errorf("a refused destination was reached %d times", hits)
	}
}

func TestFetchAllowed(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ua":%q}`, r.UserAgent())
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Header.Get("X-Custom"), b)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/json")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 2048)) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := localServer(t, mux)

	cfg := testConfig(t, nil)
	cfg.Fetch.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.Fetch.MaxResponseBytes = 1024
	cfg.Fetch.Timeout = 200 * time.Millisecond
	r := start(t, cfg, fetcherScript, nil)

	tests := []struct {
		name, path, init string
		want             map[string]any
	}{
		{"get json", "/json", "", map[string]any{"status": 200.0, "text": `{"ua":"Pier-Fetch/1"}`, "type": "application/json", "url": srv.URL + "/json", "redirected": false}},
		{"post body headers", "/echo", `{"method":"PUT","body":"data","headers":{"x-custom":"c"}}`, map[string]any{"status": 200.0, "text": "PUT c data", "type": "text/plain; charset=utf-8", "url": srv.URL + "/echo", "redirected": false}},
		{"redirect", "/redirect", "", map[string]any{"status": 200.0, "text": `{"ua":"Pier-Fetch/1"}`, "type": "application/json", "url": srv.URL + "/json", "redirected": true}},
		{"redirect manual", "/redirect", `{"redirect":"manual"}`, map[string]any{"status": 302.0, "text": "", "type": nil, "url": srv.URL + "/redirect", "redirected": false}},
		{"too large", "/big", "", map[string]any{"error": "TypeError: fetch failed: response body larger than 1024 bytes"}},
		{"timeout", "/slow", "", map[string]any{"error": "TypeError: fetch failed: timed out"}},
		{"not found", "/nope", "", map[string]any{"status": 404.0, "text": "404 page not found\n", "type": "text/plain; charset=utf-8", "url": srv.URL + "/nope", "redirected": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fetchVia(t, r, srv.URL+tt.path, tt.init)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFetchLimits(t *testing.T) {
	srv := localServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	slow := localServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	cfg := testConfig(t, nil)
	cfg.Fetch.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.Fetch.MaxRequests = 3
	cfg.Timeout = 300 * time.Millisecond
	r := start(t, cfg, `
export default { async fetch(req) {
  const q = new URL(req.url).searchParams;
  const n = Number(q.get("n"));
  const out = await Promise.allSettled(Array.from({length: n}, () => fetch(q.get("u")).then((r) => r.text())));
  return Response.json(out.map((o) => o.status === "fulfilled" ? o.value : o.reason.message));
} };`, nil)
	res := mustServe(t, r, "GET", "http://e.example/?n=4&u="+srv.URL, "")
	if want := `["ok","ok","ok","fetch failed: too many subrequests (limit 3)"]`; string(res.Body) != want {
		t.Errorf("got %s, want %s", res.Body, want)
	}
	// The request deadline cancels a pending fetch; the next request works.
	if _, err := serve(t, r, "GET", "http://e.example/?n=1&u="+slow.URL, ""); !isErr(err, ErrTimeout) {
		t.Errorf("got %v, want ErrTimeout", err)
	}
	if res := mustServe(t, r, "GET", "http://e.example/?n=1&u="+srv.URL, ""); string(res.Body) != `["ok"]` {
		t.Errorf("after timeout: %s", res.Body)
	}
}

func TestAddrAllowed(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.1.1.1", false},
		{"10.255.0.1", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.0.1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fd00:ec2::254", false},
		{"fc00::1", false},
		{"100.64.0.1", false},
		{"100.100.100.200", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"192.0.0.170", false},
		{"64:ff9b::a00:1", false},
		{"2002:7f00:1::", false},
		{"198.18.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := addrAllowed(netip.MustParseAddr(tt.addr), nil); got != tt.want {
				t.Errorf("addrAllowed(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if !addrAllowed(netip.MustParseAddr("10.1.2.3"), []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}) {
		t.Error("Allow does not exempt 10.1.0.0/16")
	}
}

// TestFetchRefusedAfterResolution: a public-looking name that resolves to a
// private address is refused (the check runs on the dialed address).
func TestFetchRefusedAfterResolution(t *testing.T) {
	cfg := testConfig(t, nil)
	cfg.Fetch.Resolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return nil, fmt.Errorf("no dns in this test")
		},
	}
	r := start(t, cfg, fetcherScript, nil)
	got := fetchVia(t, r, "http://127.0.0.1.nip.io/", "")
	if e, _ := got["error"].(string); !strings.HasPrefix(e, "TypeError: fetch failed:") {
		t.Errorf("got %v", got)
	}
}
