package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/edge"
)

// Project is the API form of a project.
type Project struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	RepoURL        string `json:"repo_url"`
	Branch         string `json:"branch"`
	Framework      string `json:"framework"`
	InstallCommand string `json:"install_command,omitempty"`
	BuildCommand   string `json:"build_command,omitempty"`
	OutputDir      string `json:"output_dir,omitempty"`
	HasGitToken    bool   `json:"has_git_token"`
	GitHubRepo     string `json:"github_repo,omitempty"`
	// WebhookSecret is shown once: in the answer to the project's creation
	// (and to a rotation).
	WebhookSecret string `json:"webhook_secret,omitempty"`
	URL           string `json:"url"`
	// FlatHosts: the project's other hosts are <label>--<name>.<base>
	// rather than <label>.<name>.<base> (edge.HostNames).
	FlatHosts        bool      `json:"flat_hosts,omitempty"`
	ActiveDeployment string    `json:"active_deployment_id,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
}

// Deployment is the API form of a deployment.
type Deployment struct {
	ID          string        `json:"id"`
	ProjectID   string        `json:"project_id"`
	Ref         string        `json:"ref"`
	CommitSHA   string        `json:"commit_sha,omitempty"`
	Environment string        `json:"environment"`
	Branch      string        `json:"branch,omitempty"`
	Alias       string        `json:"alias,omitempty"`
	Source      string        `json:"source,omitempty"`
	PullRequest int           `json:"pull_request,omitempty"`
	Fork        bool          `json:"fork,omitempty"`
	State       control.State `json:"state"`
	Framework   string        `json:"framework,omitempty"`
	Error       string        `json:"error,omitempty"`
	Files       int           `json:"files,omitempty"`
	Bytes       int64         `json:"bytes,omitempty"`
	Attempts    int           `json:"attempts"`
	URL         string        `json:"url,omitempty"`
	PreviewURL  string        `json:"preview_url,omitempty"` // the preview's stable URL, for its branch
	Live        bool          `json:"live"`
	CreatedAt   time.Time     `json:"created_at"`
	StartedAt   *time.Time    `json:"started_at,omitempty"`
	FinishedAt  *time.Time    `json:"finished_at,omitempty"`
}

func (s *Server) hostNames() edge.HostNames {
	return edge.HostNames{Base: s.cfg.BaseDomain, Flat: s.cfg.FlatHosts}
}

func (s *Server) url(host string) string {
	if s.cfg.EdgePort == "" {
		return s.cfg.EdgeScheme + "://" + host
	}
	return s.cfg.EdgeScheme + "://" + host + ":" + s.cfg.EdgePort
}

func (s *Server) project(p *control.Project, active string) Project {
	return Project{
		ID: p.ID, Name: p.Name, RepoURL: p.RepoURL, Branch: p.Branch, Framework: p.Framework,
		InstallCommand: p.InstallCommand, BuildCommand: p.BuildCommand, OutputDir: p.OutputDir,
		HasGitToken: len(p.GitToken) > 0, GitHubRepo: p.GitHubRepo, URL: s.url(s.hostNames().Project(p.Name)), FlatHosts: s.cfg.FlatHosts,
		ActiveDeployment: active, CreatedAt: p.CreatedAt,
	}
}

func (s *Server) deployment(d *control.Deployment, projectName, active string) Deployment {
	out := Deployment{
		ID: d.ID, ProjectID: d.ProjectID, Ref: d.Ref, CommitSHA: d.CommitSHA, Environment: d.Environment,
		Branch: d.Branch, Alias: d.Alias, Source: d.Source, PullRequest: d.PullRequest, Fork: d.Fork,
		State: d.State, Framework: d.Framework, Error: d.Error, Files: d.Files, Bytes: d.Bytes,
		Attempts: d.Attempts, Live: d.ID == active, CreatedAt: d.CreatedAt,
	}
	if d.State == control.StateReady && projectName != "" {
		out.URL = s.url(s.hostNames().Sub(d.ID, projectName))
	}
	if d.Alias != "" && projectName != "" {
		out.PreviewURL = s.url(s.hostNames().Sub(d.Alias, projectName))
	}
	if !d.StartedAt.IsZero() {
		t := d.StartedAt
		out.StartedAt = &t
	}
	if !d.FinishedAt.IsZero() {
		t := d.FinishedAt
		out.FinishedAt = &t
	}
	return out
}

// bind decodes a JSON body strictly; an empty body is an empty object.
func bind(c *gin.Context, v any) error { return bindLimit(c, v, 1<<20) }

func bindLimit(c *gin.Context, v any, limit int64) error {
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s", errBadJSON, err.Error())
	}
	return nil
}

type createProjectRequest struct {
	Name           string `json:"name"`
	RepoURL        string `json:"repo_url"`
	Branch         string `json:"branch"`
	Framework      string `json:"framework"`
	InstallCommand string `json:"install_command"`
	BuildCommand   string `json:"build_command"`
	OutputDir      string `json:"output_dir"`
	GitToken       string `json:"git_token"`
	GitHubRepo     string `json:"github_repo"`
}

func (s *Server) createProject(c *gin.Context) (int, any, error) {
	var req createProjectRequest
	if err := bind(c, &req); err != nil {
		return 0, nil, err
	}
	p, err := s.deps.Deploy.CreateProject(c.Request.Context(), deploy.ProjectInput(req))
	if err != nil {
		return 0, nil, err
	}
	out := s.project(p, "")
	if len(p.WebhookSecret) > 0 { // shown this once
		secret, err := s.deps.Deploy.WebhookSecret(c.Request.Context(), p)
		if err != nil {
			return 0, nil, err
		}
		out.WebhookSecret = string(secret)
	}
	return http.StatusCreated, out, nil
}

func (s *Server) rotateWebhookSecret(c *gin.Context) (int, any, error) {
	secret, err := s.deps.Deploy.RotateWebhookSecret(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"webhook_secret": secret, "note": "set it in the repository's webhook now: it is shown only once"}, nil
}

func (s *Server) listProjects(c *gin.Context) (int, any, error) {
	ps, err := s.deps.Deploy.Projects(c.Request.Context())
	if err != nil {
		return 0, nil, err
	}
	out := make([]Project, 0, len(ps))
	for _, p := range ps {
		active, err := s.deps.Deploy.Active(c.Request.Context(), p.ID)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, s.project(p, active))
	}
	return http.StatusOK, gin.H{"projects": out}, nil
}

func (s *Server) getProject(c *gin.Context) (int, any, error) {
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	active, err := s.deps.Deploy.Active(c.Request.Context(), p.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.project(p, active), nil
}

func (s *Server) deleteProject(c *gin.Context) (int, any, error) {
	if err := s.deps.Deploy.DeleteProject(c.Request.Context(), c.Param("project")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

type createDeploymentRequest struct {
	Ref         string `json:"ref"`
	Environment string `json:"environment"`
	Branch      string `json:"branch"`
	// Files deploys uploaded files instead of building the repository:
	// path → {sha256, size}, every blob sent first (see uploads).
	Files map[string]deploy.UploadFile `json:"files"`
	SPA   bool                         `json:"spa"`
}

func (s *Server) createDeployment(c *gin.Context) (int, any, error) {
	var req createDeploymentRequest
	if err := bindLimit(c, &req, 16<<20); err != nil {
		return 0, nil, err
	}
	p, err := s.deps.Deploy.Project(c.Request.Context(), c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	var d *control.Deployment
	if req.Files != nil {
		if req.Ref != "" {
			return 0, nil, control.Invalid("ref", "must be empty for a deployment of uploaded files")
		}
		d, err = s.deps.Deploy.CreateUpload(c.Request.Context(), p.ID, deploy.UploadInput{
			Files: req.Files, Environment: req.Environment, Branch: req.Branch, SPA: req.SPA})
	} else {
		d, err = s.deps.Deploy.CreateDeployment(c.Request.Context(), p.ID, deploy.DeployInput{
			Ref: req.Ref, Environment: req.Environment, Branch: req.Branch})
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, s.deployment(d, p.Name, ""), nil
}

func (s *Server) listDeployments(c *gin.Context) (int, any, error) {
	ctx := c.Request.Context()
	p, err := s.deps.Deploy.Project(ctx, c.Param("project"))
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryLimit(c, 50, 1000)
	if err != nil {
		return 0, nil, err
	}
	ds, err := s.deps.Deploy.Deployments(ctx, p.ID, limit)
	if err != nil {
		return 0, nil, err
	}
	active, err := s.deps.Deploy.Active(ctx, p.ID)
	if err != nil {
		return 0, nil, err
	}
	out := make([]Deployment, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.deployment(d, p.Name, active))
	}
	return http.StatusOK, gin.H{"deployments": out}, nil
}

func (s *Server) getDeployment(c *gin.Context) (int, any, error) {
	ctx := c.Request.Context()
	d, err := s.deps.Deploy.Deployment(ctx, c.Param("deployment"))
	if err != nil {
		return 0, nil, err
	}
	p, err := s.deps.Deploy.Project(ctx, d.ProjectID)
	if err != nil {
		return 0, nil, err
	}
	active, err := s.deps.Deploy.Active(ctx, p.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.deployment(d, p.Name, active), nil
}

func (s *Server) promote(c *gin.Context) (int, any, error) {
	cut, err := s.deps.Deploy.Promote(c.Request.Context(), c.Param("deployment"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, cutover(cut), nil
}

type rollbackRequest struct {
	DeploymentID string `json:"deployment_id"`
}

func (s *Server) rollback(c *gin.Context) (int, any, error) {
	var req rollbackRequest
	if err := bind(c, &req); err != nil {
		return 0, nil, err
	}
	cut, err := s.deps.Deploy.Rollback(c.Request.Context(), c.Param("project"), req.DeploymentID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, cutover(cut), nil
}

// Cutover is the API form of a promotion's outcome.
type Cutover struct {
	DeploymentID string      `json:"deployment_id"`
	Previous     string      `json:"previous_deployment_id,omitempty"`
	Edges        []EdgeReady `json:"edges"`
	TotalMS      float64     `json:"total_ms"`
}

// EdgeReady is one edge's readiness time within a cutover.
type EdgeReady struct {
	Edge   string  `json:"edge"`
	WaitMS float64 `json:"wait_ms"`
}

func cutover(c *deploy.Cutover) Cutover {
	out := Cutover{DeploymentID: c.DeploymentID, Previous: c.Previous, TotalMS: ms(c.Total), Edges: []EdgeReady{}}
	for _, e := range c.Edges {
		out.Edges = append(out.Edges, EdgeReady{Edge: e.Edge, WaitMS: ms(e.Wait)})
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *Server) cancel(c *gin.Context) (int, any, error) {
	d, err := s.deps.Deploy.Cancel(c.Request.Context(), c.Param("deployment"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, s.deployment(d, "", ""), nil
}

// logs serves the build log as text/plain from ?offset=N. With
// ?follow=1 it streams it as server-sent events until the deployment
// reaches a final state (followBuildLog).
func (s *Server) logs(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("deployment")
	var offset int64
	if v := c.Query("offset"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(c, http.StatusBadRequest, "invalid", "offset: must be a non-negative number")
			return
		}
		offset = n
	}
	if isFollow(c) {
		s.followBuildLog(c, id, offset) // server-sent events: telemetry.go
		return
	}
	chunk, err := s.deps.Deploy.Log(ctx, id, offset)
	if err != nil {
		code, kind, msg := s.statusOf(c, err)
		writeError(c, code, kind, msg)
		return
	}
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("X-Log-Offset", strconv.FormatInt(offset+int64(len(chunk)), 10))
	c.Status(http.StatusOK)
	c.Writer.Write(chunk)
}

type createTokenRequest struct {
	Name  string        `json:"name"`
	Scope control.Scope `json:"scope"`
}

func (s *Server) createToken(c *gin.Context) (int, any, error) {
	var req createTokenRequest
	if err := bind(c, &req); err != nil {
		return 0, nil, err
	}
	if req.Name == "" || len(req.Name) > 100 {
		return 0, nil, control.Invalid("name", "is required (at most 100 characters)")
	}
	if req.Scope == "" {
		req.Scope = control.ScopeAdmin
	}
	if req.Scope != control.ScopeAdmin && req.Scope != control.ScopeRead {
		return 0, nil, control.Invalid("scope", "must be admin or read")
	}
	secret, tok := NewToken(req.Name, req.Scope)
	if err := s.deps.Tokens.CreateToken(c.Request.Context(), tok); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, gin.H{"id": tok.ID, "name": tok.Name, "scope": tok.Scope, "token": secret,
		"note": "store this token now: it is shown only once"}, nil
}

// whoami describes the token the request was made with (never its secret):
// what `pier login` checks a token with.
func (s *Server) whoami(c *gin.Context) (int, any, error) {
	tok, _ := c.Get("token")
	t, ok := tok.(*control.Token)
	if !ok {
		return 0, nil, errors.New("whoami: no token in the request context")
	}
	return http.StatusOK, gin.H{"id": t.ID, "name": t.Name, "scope": t.Scope, "created_at": t.CreatedAt}, nil
}

func (s *Server) listTokens(c *gin.Context) (int, any, error) {
	ts, err := s.deps.Tokens.ListTokens(c.Request.Context())
	if err != nil {
		return 0, nil, err
	}
	if ts == nil {
		ts = []*control.Token{}
	}
	return http.StatusOK, gin.H{"tokens": ts}, nil
}

// NewToken makes a token secret ("pier_" + 32 random bytes, base64url) and
// the record that stores only its hash.
func NewToken(name string, scope control.Scope) (secret string, t *control.Token) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	secret = "pier_" + base64.RawURLEncoding.EncodeToString(b)
	return secret, &control.Token{ID: control.NewID("tok"), Name: name, Scope: scope, Hash: HashToken(secret), CreatedAt: time.Now().UTC()}
}

// rewrapSecrets re-encrypts every stored secret under the newest key
// version (run after rotating the key).
func (s *Server) rewrapSecrets(c *gin.Context) (int, any, error) {
	n, err := s.deps.Deploy.RewrapSecrets(c.Request.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gin.H{"rewrapped": n}, nil
}

// queryLimit reads the "limit" query parameter: def when it is absent,
// else a number from 1 to max (no upper bound when max is 0).
func queryLimit(c *gin.Context, def, max int) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 1:
		return 0, control.Invalid("limit", "want a positive number, not %q", v)
	case max > 0 && n > max:
		return 0, control.Invalid("limit", "want 1 to %d, not %q", max, v)
	}
	return n, nil
}
