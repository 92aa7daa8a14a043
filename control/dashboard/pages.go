package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Project, Deployment and EnvVar are the parts of the API's answers the
// pages show.
type Project struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	RepoURL          string `json:"repo_url"`
	Branch           string `json:"branch"`
	Framework        string `json:"framework"`
	URL              string `json:"url"`
	ActiveDeployment string `json:"active_deployment_id"`
	CreatedAt        string `json:"created_at"`
}

type Deployment struct {
	ID          string `json:"id"`
	ProjectID   string `json:"project_id"`
	Ref         string `json:"ref"`
	CommitSHA   string `json:"commit_sha"`
	Environment string `json:"environment"`
	Branch      string `json:"branch"`
	Alias       string `json:"alias"`
	Source      string `json:"source"`
	State       string `json:"state"`
	Framework   string `json:"framework"`
	Error       string `json:"error"`
	Files       int    `json:"files"`
	Bytes       int64  `json:"bytes"`
	URL         string `json:"url"`
	PreviewURL  string `json:"preview_url"`
	Live        bool   `json:"live"`
	CreatedAt   string `json:"created_at"`
}

// Domain is a custom domain as the API lists it, with the DNS records
// that verify it.
type Domain struct {
	Name       string      `json:"name"`
	State      string      `json:"state"`
	Token      string      `json:"token"`
	Records    []DNSRecord `json:"records"`
	URL        string      `json:"url"`
	CreatedAt  string      `json:"created_at"`
	VerifiedAt string      `json:"verified_at"`
}

// DNSRecord is one record to set at the DNS provider.
type DNSRecord struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TXT is the ownership record (the first TXT of Records).
func (d Domain) TXT() DNSRecord {
	for _, r := range d.Records {
		if r.Type == "TXT" {
			return r
		}
	}
	return DNSRecord{}
}

// Pointing is the records that point the domain at the edges (one of
// them is enough).
func (d Domain) Pointing() []DNSRecord {
	var out []DNSRecord
	for _, r := range d.Records {
		if r.Type != "TXT" {
			out = append(out, r)
		}
	}
	return out
}

type EnvVar struct {
	Name      string   `json:"name"`
	Scope     string   `json:"scope"`
	Targets   []string `json:"targets"`
	UpdatedAt string   `json:"updated_at"`
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := s.session(r); err == nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.render(w, r, "login", nil, map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a post-login redirect inside the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix
	}
	return next
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !sameOrigin(r) {
		http.Error(w, "bad sign-in request", http.StatusBadRequest)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	var me whoami
	if token == "" {
		s.render(w, r, "login", nil, map[string]any{"Next": next, "Error": "Paste an API token (pier dev prints one)."})
		return
	}
	if _, err := s.call(r.Context(), token, "GET", "/v1/whoami", nil, &me); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, r, "login", nil, map[string]any{"Next": next, "Error": "That token was refused: check it and try again."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: Prefix, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.SessionTTL / time.Second)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "bad sign-out request", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (s *Server) projectsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	var list struct{ Projects []Project }
	if _, err := s.call(r.Context(), sess.token, "GET", "/v1/projects", nil, &list); err != nil {
		s.renderError(w, r, sess, err)
		return
	}
	s.render(w, r, "projects", sess, map[string]any{"Projects": list.Projects})
}

func (s *Server) projectPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	name := r.PathValue("project")
	var p Project
	if _, err := s.call(ctx, sess.token, "GET", "/v1/projects/"+url.PathEscape(name), nil, &p); err != nil {
		s.renderError(w, r, sess, err)
		return
	}
	var ds struct{ Deployments []Deployment }
	if _, err := s.call(ctx, sess.token, "GET", "/v1/projects/"+p.ID+"/deployments?limit=30", nil, &ds); err != nil {
		s.renderError(w, r, sess, err)
		return
	}
	var env struct{ Env []EnvVar }
	if _, err := s.call(ctx, sess.token, "GET", "/v1/projects/"+p.ID+"/env", nil, &env); err != nil {
		s.renderError(w, r, sess, err)
		return
	}
	// Custom domains may be off on this server (404): the section says so.
	var doms struct{ Domains []Domain }
	domainsOK := true
	if _, err := s.call(ctx, sess.token, "GET", "/v1/projects/"+p.ID+"/domains", nil, &doms); err != nil {
		var e *apiError
		if !errors.As(err, &e) || !unavailableStatus(e.Status) {
			s.renderError(w, r, sess, err)
			return
		}
		domainsOK = false
	}
	s.render(w, r, "project", sess, map[string]any{"Project": p, "Deployments": ds.Deployments, "Env": env.Env,
		"Targets": []string{"production", "preview", "staging", "sandbox"}, "Domains": doms.Domains, "DomainsAvailable": domainsOK})
}

func (s *Server) deploymentPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	var d Deployment
	if _, err := s.call(ctx, sess.token, "GET", "/v1/deployments/"+url.PathEscape(r.PathValue("deployment")), nil, &d); err != nil {
		s.renderError(w, r, sess, err)
		return
	}
	var p Project
	if _, err := s.call(ctx, sess.token, "GET", "/v1/projects/"+d.ProjectID, nil, &p); err != nil {
		s.renderError(w, r, sess, err)
		return
	}
	s.render(w, r, "deployment", sess, map[string]any{"Project": p, "Deployment": d})
}

func projectPath(name string) string { return "/ui/projects/" + url.PathEscape(name) }

func (s *Server) deploy(r *http.Request, sess *session) (string, string, error) {
	name := r.PathValue("project")
	body := map[string]any{}
	for _, f := range []string{"ref", "environment", "branch"} {
		if v := strings.TrimSpace(r.PostFormValue(f)); v != "" {
			body[f] = v
		}
	}
	var d Deployment
	if _, err := s.call(r.Context(), sess.token, "POST", "/v1/projects/"+url.PathEscape(name)+"/deployments", body, &d); err != nil {
		return projectPath(name), "", err
	}
	return "/ui/deployments/" + d.ID, "Deployment " + d.ID + " queued", nil
}

type cutover struct {
	DeploymentID string  `json:"deployment_id"`
	Previous     string  `json:"previous_deployment_id"`
	TotalMS      float64 `json:"total_ms"`
	Edges        []any   `json:"edges"`
}

func (c cutover) String(verb string) string {
	return verb + ": " + c.DeploymentID + " is live on " + itoa(len(c.Edges)) + " edge(s) in " + ftoa(c.TotalMS) + " ms"
}

func (s *Server) rollback(r *http.Request, sess *session) (string, string, error) {
	name := r.PathValue("project")
	body := map[string]any{}
	if id := r.PostFormValue("deployment_id"); id != "" {
		body["deployment_id"] = id
	}
	var c cutover
	if _, err := s.call(r.Context(), sess.token, "POST", "/v1/projects/"+url.PathEscape(name)+"/rollback", body, &c); err != nil {
		return projectPath(name), "", err
	}
	return projectPath(name), c.String("Rolled back"), nil
}

func (s *Server) promote(r *http.Request, sess *session) (string, string, error) {
	id := r.PathValue("deployment")
	back := "/ui/deployments/" + url.PathEscape(id)
	if p := r.PostFormValue("back"); p != "" {
		back = safeNext(p)
	}
	var c cutover
	if _, err := s.call(r.Context(), sess.token, "POST", "/v1/deployments/"+url.PathEscape(id)+"/promote", map[string]any{}, &c); err != nil {
		return back, "", err
	}
	return back, c.String("Promoted"), nil
}

func (s *Server) setEnv(r *http.Request, sess *session) (string, string, error) {
	name := r.PathValue("project")
	varName := strings.TrimSpace(r.PostFormValue("name"))
	if varName == "" {
		return projectPath(name) + "#env", "", errors.New("the variable needs a name")
	}
	body := map[string]any{"value": r.PostFormValue("value")}
	if sc := r.PostFormValue("scope"); sc != "" {
		body["scope"] = sc
	}
	if ts := r.PostForm["targets"]; len(ts) > 0 {
		body["targets"] = ts
	}
	if _, err := s.call(r.Context(), sess.token, "PUT", "/v1/projects/"+url.PathEscape(name)+"/env/"+url.PathEscape(varName), body, nil); err != nil {
		return projectPath(name), "", err
	}
	return projectPath(name), "Variable " + varName + " set; new deployments get it", nil
}

func (s *Server) deleteEnv(r *http.Request, sess *session) (string, string, error) {
	name, varName := r.PathValue("project"), r.PathValue("name")
	if _, err := s.call(r.Context(), sess.token, "DELETE", "/v1/projects/"+url.PathEscape(name)+"/env/"+url.PathEscape(varName), nil, nil); err != nil {
		return projectPath(name), "", err
	}
	return projectPath(name), "Variable " + varName + " removed", nil
}

// unavailableStatus is an answer meaning the server lacks the endpoint.
func unavailableStatus(code int) bool {
	return code == http.StatusNotFound || code == http.StatusMethodNotAllowed || code == http.StatusNotImplemented
}

func domainPath(project, domain string) string {
	return "/v1/projects/" + url.PathEscape(project) + "/domains/" + url.PathEscape(domain)
}

func (s *Server) addDomain(r *http.Request, sess *session) (string, string, error) {
	name := r.PathValue("project")
	back := projectPath(name) + "#domains"
	domain := strings.TrimSpace(r.PostFormValue("name"))
	if domain == "" {
		return back, "", errors.New("the domain needs a name, like www.example.com")
	}
	var d Domain
	if _, err := s.call(r.Context(), sess.token, "POST", "/v1/projects/"+url.PathEscape(name)+"/domains", map[string]string{"name": domain}, &d); err != nil {
		return back, "", fmt.Errorf("add %s: %w", domain, err)
	}
	txt := d.TXT()
	return back, "Domain " + d.Name + " added (pending): set a TXT record " + txt.Name + " = " + txt.Value + " and point it at the edges, then verify", nil
}

func (s *Server) verifyDomain(r *http.Request, sess *session) (string, string, error) {
	name, domain := r.PathValue("project"), r.PathValue("domain")
	back := projectPath(name) + "#domains"
	var d Domain
	if _, err := s.call(r.Context(), sess.token, "POST", domainPath(name, domain)+"/verify", map[string]any{}, &d); err != nil {
		return back, "", fmt.Errorf("verification of %s failed: %w", domain, err)
	}
	return back, "Domain " + d.Name + " verified: every edge serves the production deployment at " + d.URL, nil
}

func (s *Server) deleteDomain(r *http.Request, sess *session) (string, string, error) {
	name, domain := r.PathValue("project"), r.PathValue("domain")
	back := projectPath(name) + "#domains"
	if _, err := s.call(r.Context(), sess.token, "DELETE", domainPath(name, domain), nil, nil); err != nil {
		return back, "", fmt.Errorf("remove %s: %w", domain, err)
	}
	return back, "Domain " + domain + " removed", nil
}
