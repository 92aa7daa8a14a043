package dashboard_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// shape, and records the writes it gets.
type fakeAPI struct{ writes []string }

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
		{"GET", "/ui/api/v1/deployments/x/logs?follow=1", 400},
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
