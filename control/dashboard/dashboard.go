// Package dashboard is Pier's web dashboard: server-rendered pages
// (html/template, assets embedded with go:embed, a little vanilla JS)
// served by control under /ui/.
//
// It is a client of the REST API, called in process: every page and
// action is an API call made with the signed-in user's token, so the
// dashboard can do exactly what that token may do, and a section whose
// endpoint the server lacks (custom domains, runtime logs and metrics are
// optional roles) shows "not available" instead of failing. Sign-in takes
// an API token, kept in an HttpOnly, SameSite=Strict cookie scoped to
// /ui/; every POST also carries a CSRF token derived from the session and
// must come from the same origin.
//
// It imports the standard library only; control/cmd/pier mounts it next
// to the API.
package dashboard

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the dashboard is mounted.
const Prefix = "/ui/"

const cookieName = "pier_session"

// Config tunes the dashboard.
type Config struct {
	// SessionTTL is how long a sign-in lasts; default 12h.
	SessionTTL time.Duration
	Logger     *slog.Logger
}

// Deps is what the dashboard calls.
type Deps struct {
	// API is the control REST API handler (/v1/...), called in process.
	API http.Handler
}

// Server serves the dashboard.
type Server struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New builds the dashboard handler; it starts nothing.
func New(cfg Config, deps Deps) *Server {
	if deps.API == nil {
		panic("dashboard.New: nil dependency")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, deps: deps, log: cfg.Logger.With("component", "dashboard"), pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"ago":   ago,
		"join":  strings.Join,
		"stage": stage,
		"final": func(state string) bool { return state == "ready" || state == "failed" || state == "canceled" },
	}
	for _, page := range []string{"login", "projects", "project", "deployment"} {
		s.pages[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html"))
	}
	static, _ := fs.Sub(staticFS, "static")
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", staticHandler(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/login", s.loginPage)
	m.HandleFunc("POST /ui/login", s.login)
	m.HandleFunc("POST /ui/logout", s.logout)
	m.HandleFunc("GET /ui/{$}", s.authed(s.projectsPage))
	m.HandleFunc("GET /ui/projects/{project}", s.authed(s.projectPage))
	m.HandleFunc("GET /ui/deployments/{deployment}", s.authed(s.deploymentPage))
	m.HandleFunc("POST /ui/projects/{project}/deploy", s.action(s.deploy))
	m.HandleFunc("POST /ui/projects/{project}/rollback", s.action(s.rollback))
	m.HandleFunc("POST /ui/projects/{project}/env", s.action(s.setEnv))
	m.HandleFunc("POST /ui/projects/{project}/env/{name}/delete", s.action(s.deleteEnv))
	m.HandleFunc("POST /ui/deployments/{deployment}/promote", s.action(s.promote))
	m.HandleFunc("POST /ui/projects/{project}/domains", s.action(s.addDomain))
	m.HandleFunc("POST /ui/projects/{project}/domains/{domain}/verify", s.action(s.verifyDomain))
	m.HandleFunc("POST /ui/projects/{project}/domains/{domain}/delete", s.action(s.deleteDomain))
	// Read-only API access for the pages' scripts (build log, runtime
	// logs, metrics), with the session's token; ?follow=1 streams.
	m.HandleFunc("GET /ui/api/v1/", s.authed(s.proxy))
	s.mux = m
	return s
}

func staticHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP serves /ui/...
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	s.mux.ServeHTTP(w, r)
}

// session is a signed-in request.
type session struct {
	token string
	csrf  string
	user  whoami
}

type whoami struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Scope string `json:"scope"`
}

// csrfToken is derived from the session's token: a page can only carry it
// if it was rendered for that session, and it reveals nothing of the token.
func csrfToken(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("pier dashboard csrf"))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

func (s *Server) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil, errSignedOut
	}
	sess := &session{token: c.Value, csrf: csrfToken(c.Value)}
	if st, err := s.call(r.Context(), sess.token, "GET", "/v1/whoami", nil, &sess.user); err != nil || st != http.StatusOK {
		return nil, errSignedOut
	}
	return sess, nil
}

var errSignedOut = errors.New("signed out")

type pageHandler func(w http.ResponseWriter, r *http.Request, sess *session)

// authed runs h for a signed-in request; others go to the sign-in page
// (scripts get a 401).
func (s *Server) authed(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.session(r)
		if err != nil {
			if strings.HasPrefix(r.URL.Path, "/ui/api/") {
				http.Error(w, "signed out", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
			return
		}
		h(w, r, sess)
	}
}

// sameOrigin refuses a POST sent from another origin (when the browser
// says where it comes from).
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// action runs a form POST: signed in, same origin, the session's CSRF
// token. fn returns where to go next, with a message or an error shown
// there.
func (s *Server) action(fn func(r *http.Request, sess *session) (next, msg string, err error)) http.HandlerFunc {
	return s.authed(func(w http.ResponseWriter, r *http.Request, sess *session) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if !sameOrigin(r) || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(sess.csrf)) {
			http.Error(w, "this form is stale or came from another site: reload the page and try again", http.StatusForbidden)
			return
		}
		next, msg, err := fn(r, sess)
		q := url.Values{}
		if err != nil {
			q.Set("error", err.Error())
		} else if msg != "" {
			q.Set("msg", msg)
		}
		if len(q) > 0 {
			// A message about a section is shown in it, where the
			// fragment scrolls to.
			path, frag, _ := strings.Cut(next, "#")
			if frag != "" {
				q.Set("at", frag)
			}
			next = path + "?" + q.Encode()
			if frag != "" {
				next += "#" + frag
			}
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
}

// apiError is an API error answer; its message is user-safe by the API's
// contract.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

// call makes one API request in process with token, decoding a JSON answer
// into out. A non-2xx answer is an *apiError.
func (s *Server) call(ctx context.Context, token, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := newRecorder()
	s.deps.API.ServeHTTP(rec, req)
	if rec.status >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		json.Unmarshal(rec.body.Bytes(), &e)
		if e.Error.Message == "" {
			e.Error.Message = http.StatusText(rec.status)
		}
		return rec.status, &apiError{Status: rec.status, Message: e.Error.Message}
	}
	if out != nil && rec.body.Len() > 0 {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return rec.status, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return rec.status, nil
}

// proxy answers a page script's GET /ui/api/v1/... with the API's answer.
// A ?follow=1 request (the build log's and the runtime logs' server-sent
// events) is streamed as the API writes it, until the page goes away;
// Last-Event-ID passes through so a reconnecting EventSource resumes.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, sess *session) {
	path := strings.TrimPrefix(r.URL.Path, "/ui/api")
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, path+"?"+r.URL.RawQuery, nil)
	if err != nil {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	req.Header.Set("Authorization", "Bearer "+sess.token)
	if q := r.URL.Query().Get("follow"); q == "1" || q == "true" {
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			req.Header.Set("Last-Event-ID", id)
		}
		w.Header().Set("Cache-Control", "no-store")
		s.deps.API.ServeHTTP(w, req)
		return
	}
	rec := newRecorder()
	s.deps.API.ServeHTTP(rec, req)
	for _, h := range []string{"Content-Type", "X-Log-Offset"} {
		if v := rec.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(rec.status)
	w.Write(rec.body.Bytes())
}

// recorder is an in-memory http.ResponseWriter for in-process API calls.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
func (r *recorder) Flush() {}

func (s *Server) render(w http.ResponseWriter, r *http.Request, page string, sess *session, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	for key, param := range map[string]string{"Msg": "msg", "Error": "error", "At": "at"} {
		if _, ok := data[key]; !ok {
			data[key] = r.URL.Query().Get(param)
		}
	}
	if at := data["At"]; at != "domains" && at != "env" { // the sections that show their own messages
		data["At"] = ""
	}
	if sess != nil {
		data["User"] = sess.user
		data["CSRF"] = sess.csrf
	}
	var buf bytes.Buffer
	if err := s.pages[page].Execute(&buf, data); err != nil {
		s.log.Error("render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// renderError shows an API failure on a page of its own.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	status := http.StatusInternalServerError
	var e *apiError
	if errors.As(err, &e) {
		status = e.Status
	} else {
		s.log.Error("dashboard page", "path", r.URL.Path, "err", err)
		err = errors.New("internal error; see the control log")
	}
	w.WriteHeader(status)
	s.render(w, r, "projects", sess, map[string]any{"Failure": err.Error()})
}

func ago(ts string) string {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return ts
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2006-01-02 15:04")
}

// stage is how a deployment's target reads.
func stage(env, alias string) string {
	if alias == "" || alias == env {
		return env
	}
	return env + " · " + alias
}

func itoa(n int) string     { return fmt.Sprint(n) }
func ftoa(f float64) string { return fmt.Sprintf("%.1f", f) }
