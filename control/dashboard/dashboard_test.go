package dashboard_test

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pierhq/pier/control/dashboard"
)

const token = "pier_good"

// fakeAPI answers the few API calls the tests make, with the API's error
// shape, and records the writes it gets. With domains false the server
// has no custom domains (404), like a control without the role.
type fakeAPI struct {
	writes  []string
	domains bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+token {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"code":"unauthorized","message":"invalid token"}}`)
		return
	}
	switch {
	case r.URL.Path == "/v1/whoami":
		io.WriteString(w, `{"id":"tok-1","name":"dev","scope":"admin"}`)
	case r.URL.Path == "/v1/projects":
		io.WriteString(w, `{"projects":[{"id":"prj-1","name":"shop","url":"http://shop.localhost"}]}`)
	case r.URL.Path == "/v1/projects/shop" || r.URL.Path == "/v1/projects/prj-1":
		io.WriteString(w, `{"id":"prj-1","name":"shop","url":"http://shop.localhost"}`)
	case r.URL.Path == "/v1/projects/prj-1/deployments":
		io.WriteString(w, `{"deployments":[]}`)
	case r.URL.Path == "/v1/projects/prj-1/env":
		io.WriteString(w, `{"env":[]}`)
	case f.domains && r.Method == "GET" && r.URL.Path == "/v1/projects/prj-1/domains":
		io.WriteString(w, `{"domains":[{"name":"www.example.com","state":"pending","token":"pier-verify=abc",
			"records":[{"type":"TXT","name":"_pier-challenge.www.example.com","value":"pier-verify=abc"},
			{"type":"CNAME","name":"www.example.com","value":"shop.localhost"}],"url":"https://www.example.com","created_at":"2026-01-02T03:04:05Z"}]}`)
	case f.domains && r.Method == "POST" && r.URL.Path == "/v1/projects/shop/domains":
		f.writes = append(f.writes, r.URL.Path)
		w.WriteHeader(201)
		io.WriteString(w, `{"name":"new.example.com","state":"pending","records":[{"type":"TXT","name":"_pier-challenge.new.example.com","value":"pier-verify=xyz"}]}`)
	case f.domains && r.Method == "POST" && r.URL.Path == "/v1/projects/shop/domains/www.example.com/verify":
		f.writes = append(f.writes, r.URL.Path)
		w.WriteHeader(422)
		io.WriteString(w, `{"error":{"code":"txt_missing","message":"no TXT record at _pier-challenge.www.example.com: add one holding pier-verify=abc"}}`)
	case f.domains && r.Method == "DELETE" && r.URL.Path == "/v1/projects/shop/domains/www.example.com":
		f.writes = append(f.writes, r.URL.Path)
		w.WriteHeader(204)
	case r.URL.Path == "/v1/deployments/dpl-1/logs" && r.URL.Query().Get("follow") == "1":
		// An SSE stream in two flushed parts, resumed from Last-Event-ID.
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: 5\nevent: log\ndata: {\"offset\":0,\"text\":\"from %s\"}\n\n", r.Header.Get("Last-Event-ID"))
		w.(http.Flusher).Flush()
		io.WriteString(w, "id: 9\nevent: end\ndata: {\"state\":\"ready\"}\n\n")
	case r.Method == "POST" && r.URL.Path == "/v1/projects/shop/rollback":
		f.writes = append(f.writes, r.URL.Path)
		json.NewEncoder(w).Encode(map[string]any{"deployment_id": "dpl-1", "edges": []any{1}, "total_ms": 2.5})
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"error":{"code":"not_found","message":"no such endpoint"}}`)
	}
}

func newServer(t *testing.T) (*httptest.Server, *fakeAPI) {
	api := &fakeAPI{}
	srv := httptest.NewServer(dashboard.New(dashboard.Config{}, dashboard.Deps{API: api}))
	t.Cleanup(srv.Close)
	return srv, api
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func signIn(t *testing.T, srv *httptest.Server) *http.Cookie {
	t.Helper()
	resp, err := noRedirect.PostForm(srv.URL+"/ui/login", url.Values{"token": {token}, "next": {"/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "pier_session" {
			return c
		}
	}
	t.Fatalf("sign-in: %d, no session cookie", resp.StatusCode)
	return nil
}

func TestSessionCookie(t *testing.T) {
	srv, _ := newServer(t)
	c := signIn(t, srv)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/", c)
	}
	// A wrong token gets no cookie and says so.
	resp, _ := noRedirect.PostForm(srv.URL+"/ui/login", url.Values{"token": {"pier_bad"}})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || len(resp.Cookies()) != 0 || !strings.Contains(string(body), "refused") {
		t.Errorf("wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// Signed out, pages redirect to the sign-in page; a session-less
	// script call gets a 401.
	for path, want := range map[string]int{"/ui/": 303, "/ui/projects/shop": 303, "/ui/api/v1/projects": 401} {
		resp, _ := noRedirect.Get(srv.URL + path)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s signed out: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// A post-login redirect stays inside the dashboard.
	resp, _ = noRedirect.PostForm(srv.URL+"/ui/login", url.Values{"token": {token}, "next": {"//evil.example/ui/"}})
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/ui/" {
		t.Errorf("next=//evil.example: redirected to %q", loc)
	}
}

func TestPostsNeedCSRFAndSameOrigin(t *testing.T) {
	srv, api := newServer(t)
	c := signIn(t, srv)
	// The page carries the CSRF token; find it.
	req, _ := http.NewRequest("GET", srv.URL+"/ui/", nil)
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(page), token) {
		t.Fatal("the page shows the session token")
	}
	tests := []struct {
		name   string
		csrf   string
		origin string
		want   int
	}{
		{"no csrf", "", "", 403},
		{"wrong csrf", "0123456789abcdef0123456789abcdef", "", 403},
		{"other origin", csrfOf(token), "https://evil.example", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{}
			if tt.csrf != "" {
				form.Set("csrf", tt.csrf)
			}
			req, _ := http.NewRequest("POST", srv.URL+"/ui/projects/shop/rollback", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			req.AddCookie(c)
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	if len(api.writes) != 0 {
		t.Errorf("refused posts reached the API: %v", api.writes)
	}
	// The session's token, from this origin: done, and back to the project.
	form := url.Values{"csrf": {csrfOf(token)}}
	req, _ = http.NewRequest("POST", srv.URL+"/ui/projects/shop/rollback", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	req.AddCookie(c)
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.HasPrefix(loc, "/ui/projects/shop?msg=Rolled+back") || len(api.writes) != 1 {
		t.Errorf("good post: %d to %q, writes %v", resp.StatusCode, loc, api.writes)
	}
}

// csrfOf is the dashboard's CSRF token for a session token.
func csrfOf(tok string) string {
	m := hmac.New(sha256.New, []byte(tok))
	m.Write([]byte("pier dashboard csrf"))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

func TestProxyIsReadOnlyAndUnavailableIs404(t *testing.T) {
	srv, _ := newServer(t)
	c := signIn(t, srv)
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/ui/api/v1/projects", 200},
		{"GET", "/ui/api/v1/projects/prj-1/domains", 404}, // the page shows "not available"
		{"POST", "/ui/api/v1/projects/shop/rollback", 405},
		{"GET", "/ui/api/v1/deployments/x/logs?follow=1", 404},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		req.AddCookie(c)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
}

// get fetches a signed-in page.
func get(t *testing.T, srv *httptest.Server, c *http.Cookie, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.AddCookie(c)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// post sends a dashboard form with the session's CSRF token.
func post(t *testing.T, srv *httptest.Server, c *http.Cookie, path string, form url.Values) *http.Response {
	t.Helper()
	form.Set("csrf", csrfOf(token))
	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	req.AddCookie(c)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestDomainsSection(t *testing.T) {
	t.Run("unavailable", func(t *testing.T) {
		srv, _ := newServer(t)
		c := signIn(t, srv)
		resp, page := get(t, srv, c, "/ui/projects/shop")
		if resp.StatusCode != 200 || !strings.Contains(page, "Custom domains are not available on this server yet") || strings.Contains(page, `id="domain-form"`) {
			t.Errorf("project page without domains: %d\n%s", resp.StatusCode, page)
		}
	})
	srv, api := newServer(t)
	api.domains = true
	c := signIn(t, srv)
	_, page := get(t, srv, c, "/ui/projects/shop")
	for _, want := range []string{`data-domain="www.example.com"`, "_pier-challenge.www.example.com", "pier-verify=abc", `id="domain-form"`, "pending"} {
		if !strings.Contains(page, want) {
			t.Errorf("project page lacks %q", want)
		}
	}
	tests := []struct {
		name, path, name2 string
		wantLoc           []string
	}{
		{"add", "/ui/projects/shop/domains", "new.example.com", []string{"msg=Domain+new.example.com+added", "_pier-challenge.new.example.com", "at=domains", "#domains"}},
		{"add without a name", "/ui/projects/shop/domains", "", []string{"error=the+domain+needs+a+name", "#domains"}},
		{"verify fails with the reason", "/ui/projects/shop/domains/www.example.com/verify", "", []string{"error=verification+of+www.example.com+failed%3A+no+TXT+record", "#domains"}},
		{"remove", "/ui/projects/shop/domains/www.example.com/delete", "", []string{"msg=Domain+www.example.com+removed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, srv, c, tt.path, url.Values{"name": {tt.name2}})
			loc, _ := url.QueryUnescape(resp.Header.Get("Location"))
			raw := resp.Header.Get("Location")
			for _, w := range tt.wantLoc {
				if !strings.Contains(raw, w) && !strings.Contains(loc, w) {
					t.Errorf("%d to %q: want %q in it", resp.StatusCode, raw, w)
				}
			}
			if !strings.HasPrefix(raw, "/ui/projects/shop?") {
				t.Errorf("redirect %q: want the project page with the message before the fragment", raw)
			}
		})
	}
	// The message is shown in the section the page scrolls to.
	_, page = get(t, srv, c, "/ui/projects/shop?error=verification+failed&at=domains")
	if i, j := strings.Index(page, `id="domains"`), strings.Index(page, "verification failed"); i < 0 || j < i {
		t.Errorf("the error is not in the domains section")
	}
	_, page = get(t, srv, c, "/ui/projects/shop?error=oops&at=elsewhere")
	if i, j := strings.Index(page, `id="flash-error"`), strings.Index(page, `id="project-name"`); i < 0 || i > j {
		t.Errorf("an unknown section: the error is not at the top")
	}
	if len(api.writes) != 3 {
		t.Errorf("API writes %v: want add, verify, delete", api.writes)
	}
}

func TestProxyStreamsFollow(t *testing.T) {
	srv, _ := newServer(t)
	c := signIn(t, srv)
	req, _ := http.NewRequest("GET", srv.URL+"/ui/api/v1/deployments/dpl-1/logs?follow=1", nil)
	req.Header.Set("Last-Event-ID", "3")
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("follow: %d %q, want an event stream", resp.StatusCode, ct)
	}
	// The first event arrives as the API flushes it (the stream is not
	// buffered whole), carrying the resume point the page sent.
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() && len(lines) < 3 {
		lines = append(lines, sc.Text())
	}
	if got := strings.Join(lines, "|"); got != `id: 5|event: log|data: {"offset":0,"text":"from 3"}` {
		t.Errorf("first event %q", got)
	}
}
