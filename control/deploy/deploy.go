// Package deploy owns the deployment workflow: projects, deployments,
// the build queue worker (claim → dispatch → record), promotion and
// rollback, preview deployments (per branch and pull request, retired when
// the pull request closes), environment variables (sealed, scoped to the
// build or the runtime, frozen per deployment), build-less deployments of
// uploaded files, commit statuses reported back to GitHub, and the
// projects' lifecycle hooks (pre-build, post-deploy, deploy-failed,
// post-rollback), run in the background so they never block or fail a
// deployment.
//
// It declares the ports it calls (Dispatcher, Router, Sealer, Blobs,
// StatusReporter, HookRunner) and imports only control, jobs and edge; the adapters
// reach it through main. It is imported by control/api and
// control/controld.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/jobs"
)

// Dispatcher runs one build to completion (a Nomad batch job in
// production, a local sandboxed child process in dev). It streams the
// build log into log as it happens. A non-nil error means the build could
// not be run (infrastructure); a build that ran and failed is a result
// with Error set.
type Dispatcher interface {
	Dispatch(ctx context.Context, req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error)
}

// Router moves the active-deployment pointers (the cutover). Implemented
// over edge/coord by main.
type Router interface {
	// Announce tells every edge to sync a ready deployment ahead of a
	// promotion.
	Announce(ctx context.Context, projectID, projectName, deploymentID string) error
	// Retract withdraws an announcement (deployment deleted).
	Retract(ctx context.Context, deploymentID string) error
	// Promote makes deploymentID live for the project's environment once
	// every healthy edge holds it. It fails, leaving the old deployment
	// live, when that cannot be confirmed.
	Promote(ctx context.Context, projectID, projectName, env, deploymentID string) (*Cutover, error)
	// Active returns the live deployment ID, or "" when none.
	Active(ctx context.Context, projectID, env string) (string, error)
	// Forget removes a deleted project's pointers.
	Forget(ctx context.Context, projectID string) error
}

// Cutover reports how a promotion went.
type Cutover struct {
	DeploymentID string        `json:"deployment_id"`
	Previous     string        `json:"previous,omitempty"`
	Edges        []EdgeReady   `json:"edges"`
	Total        time.Duration `json:"total_ns"`
}

// EdgeReady is when one edge confirmed the deployment, after the cutover began.
type EdgeReady struct {
	Edge string        `json:"edge"`
	Wait time.Duration `json:"wait_ns"`
}

// Sealer encrypts secrets at rest (Vault transit or the local keyring).
type Sealer interface {
	Seal(ctx context.Context, plaintext []byte) (string, error)
	Unseal(ctx context.Context, ciphertext string) ([]byte, error)
	// Rewrap re-encrypts a ciphertext under the newest key version
	// without revealing the plaintext to the caller.
	Rewrap(ctx context.Context, ciphertext string) (string, error)
}

// Retirer is implemented by Routers that can remove one environment's
// pointer, so <env>.<project>.<base-domain> stops serving (a closed pull
// request's preview). Without it, RetirePreview fails.
type Retirer interface {
	Retire(ctx context.Context, projectID, env string) error
}

// StatusReporter reports a deployment's state on its commit (GitHub's
// commit statuses), with the project's git token. control/github's Client
// implements it.
type StatusReporter interface {
	CreateStatus(ctx context.Context, token string, st control.CommitStatus) error
}

// Config tunes the service.
type Config struct {
	// BaseDomain, EdgeScheme and EdgePort make the URLs reported to GitHub
	// (<deployment-id>.<project>.<BaseDomain>); defaults "localhost",
	// "http", and the scheme's default port.
	BaseDomain string
	EdgeScheme string
	EdgePort   string
	// FlatHosts reports URLs as <label>--<project>.<BaseDomain>
	// (edge.HostNames).
	FlatHosts bool

	BuildTimeout time.Duration // install + build; default 15m
	Workers      int           // concurrent builds; default 1
	// PollInterval is how often an idle worker looks at the queue; default 500ms.
	PollInterval time.Duration
	// MaxAttempts bounds how often a build is tried after infrastructure
	// failures (lost jobs, crashed workers); default 2 (one retry).
	MaxAttempts int
	// StaleClaim: a claim older than this with no live worker is requeued;
	// default BuildTimeout + 5m.
	StaleClaim time.Duration
	WorkerID   string
	// HookTimeout bounds one lifecycle hook run (waiting for a slot
	// included); default 10s.
	HookTimeout time.Duration
	// MaxHooks bounds the hooks running at once; default 4.
	MaxHooks int
	// DeliveryRetention is how long a webhook delivery ID is remembered
	// to refuse its replay; default 30 days (GitHub redelivers for 3).
	DeliveryRetention time.Duration
	Logger            *slog.Logger
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{BuildTimeout: 15 * time.Minute, Workers: 1, PollInterval: 500 * time.Millisecond, MaxAttempts: 2,
		HookTimeout: 10 * time.Second, MaxHooks: 4, DeliveryRetention: 30 * 24 * time.Hour}
}

// Deps are the ports the service calls. Store, Dispatcher, Router and
// Sealer are required.
type Deps struct {
	Store      control.Store
	Dispatcher Dispatcher
	Router     Router
	Sealer     Sealer
	// Blobs is the object store: uploads, and the sealed runtime
	// environment published for the edges. Optional: without it uploads
	// are refused and the runtime environment stays in the store only.
	Blobs Blobs
	// Status reports deployments on their GitHub commits. Optional.
	Status StatusReporter
	// Hooks runs the projects' lifecycle hooks (pre-build, post-deploy,
	// deploy-failed, post-rollback) in the background. Optional: nil
	// turns hooks off (they can still be stored).
	Hooks HookRunner
}

// Service is the deployment workflow.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	running map[string]context.CancelFunc // deployment ID → cancel of its build

	// Lifecycle hooks in flight (hooks.go).
	hookCtx      context.Context // canceled when Run returns
	cancelHooks  context.CancelFunc
	hookSlots    chan struct{} // cfg.MaxHooks
	hookWG       sync.WaitGroup
	hookMu       sync.Mutex
	hooksStopped bool

	// lastPrune is when RecordDelivery last pruned old deliveries (unix
	// nanoseconds).
	lastPrune atomic.Int64
}

// New returns a Service. It starts nothing; Run starts the workers.
func New(cfg Config, deps Deps) *Service {
	if deps.Store == nil || deps.Dispatcher == nil || deps.Router == nil || deps.Sealer == nil {
		panic("deploy.New: nil dependency")
	}
	def := DefaultConfig()
	if cfg.BuildTimeout <= 0 {
		cfg.BuildTimeout = def.BuildTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = def.Workers
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = def.PollInterval
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = def.MaxAttempts
	}
	if cfg.StaleClaim <= 0 {
		cfg.StaleClaim = cfg.BuildTimeout + 5*time.Minute
	}
	if cfg.WorkerID == "" {
		cfg.WorkerID = control.NewID("worker")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = "localhost"
	}
	if cfg.EdgeScheme == "" {
		cfg.EdgeScheme = "http"
	}
	if cfg.HookTimeout <= 0 {
		cfg.HookTimeout = def.HookTimeout
	}
	if cfg.DeliveryRetention <= 0 {
		cfg.DeliveryRetention = def.DeliveryRetention
	}
	if cfg.MaxHooks <= 0 {
		cfg.MaxHooks = def.MaxHooks
	}
	hookCtx, cancelHooks := context.WithCancel(context.Background())
	return &Service{
		cfg:         cfg,
		deps:        deps,
		log:         cfg.Logger.With("component", "deploy"),
		wake:        make(chan struct{}, 1),
		running:     make(map[string]context.CancelFunc),
		hookCtx:     hookCtx,
		cancelHooks: cancelHooks,
		hookSlots:   make(chan struct{}, cfg.MaxHooks),
	}
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	shaRE    = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	branchRE = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,200}$`)
)

// ProjectInput is what a client supplies to create a project.
type ProjectInput struct {
	Name           string
	RepoURL        string
	Branch         string
	Framework      string
	InstallCommand string
	BuildCommand   string
	OutputDir      string
	GitToken       string // plaintext; sealed before it is stored
	// GitHubRepo is "owner/name" on GitHub; default: from a github.com
	// RepoURL. Webhooks find the project by it.
	GitHubRepo string
}

// Frameworks the builder knows; "" and "auto" mean detect.
var Frameworks = []string{"auto", "static", "vite", "nextjs", "astro", "sveltekit", "hugo", "docusaurus"}

func (s *Service) validateProject(in *ProjectInput) error {
	in.Name = strings.TrimSpace(in.Name)
	if !nameRE.MatchString(in.Name) {
		return control.Invalid("name", "must be a DNS label: 1-63 lowercase letters, digits or '-', not starting or ending with '-'")
	}
	if strings.Contains(in.Name, edge.FlatSeparator) {
		return control.Invalid("name", "%q: '--' is reserved (it joins a deployment or stage to the project in host names like dpl-x--%s)",
			in.Name, strings.ReplaceAll(in.Name, "--", "-"))
	}
	if err := s.validateRepoURL(in.RepoURL); err != nil {
		return err
	}
	if in.Branch == "" {
		in.Branch = "main"
	}
	if !validBranch(in.Branch) {
		return control.Invalid("branch", "is not a valid branch name")
	}
	if in.Framework == "" {
		in.Framework = "auto"
	}
	known := false
	for _, f := range Frameworks {
		known = known || f == in.Framework
	}
	if !known {
		return control.Invalid("framework", "must be one of %s", strings.Join(Frameworks, ", "))
	}
	if in.OutputDir != "" {
		clean := path.Clean(in.OutputDir)
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(in.OutputDir, `\`) {
			return control.Invalid("output_dir", "must be a relative path inside the repository")
		}
		in.OutputDir = clean
	}
	for field, v := range map[string]string{"install_command": in.InstallCommand, "build_command": in.BuildCommand} {
		if len(v) > 4096 || strings.ContainsRune(v, 0) {
			return control.Invalid(field, "is too long or contains NUL")
		}
	}
	if in.GitHubRepo == "" {
		in.GitHubRepo = repoFromURL(in.RepoURL)
	}
	if in.GitHubRepo != "" && !githubRepoRE.MatchString(in.GitHubRepo) {
		return control.Invalid("github_repo", "must look like owner/name")
	}
	in.GitHubRepo = strings.ToLower(in.GitHubRepo)
	return nil
}

var githubRepoRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$`)

// repoFromURL is "owner/name" of a github.com repository URL, else "".
func repoFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Hostname(), "github.com") {
		return ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 {
		return ""
	}
	repo := parts[0] + "/" + strings.TrimSuffix(parts[1], ".git")
	if !githubRepoRE.MatchString(repo) {
		return ""
	}
	return strings.ToLower(repo)
}

// validateRepoURL checks a project's repository; none ("") makes a
// project deployed only from uploaded files.
func (s *Service) validateRepoURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return control.Invalid("repo_url", "is not a URL")
	}
	// Only http(s): file://, ext:: and local paths would let a build read
	// or run things on the builder host.
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return control.Invalid("repo_url", "must be an http(s) git URL")
	case u.Host == "":
		return control.Invalid("repo_url", "has no host")
	case u.User != nil:
		return control.Invalid("repo_url", "must not carry credentials: use git_token")
	}
	return nil
}

func validBranch(b string) bool {
	return branchRE.MatchString(b) && !strings.Contains(b, "..") && !strings.HasPrefix(b, "-") &&
		!strings.HasPrefix(b, "/") && !strings.HasSuffix(b, "/") && !strings.HasSuffix(b, ".lock")
}

// CreateProject validates in and stores a new project. A project on
// GitHub gets a webhook secret (read it once with WebhookSecret).
func (s *Service) CreateProject(ctx context.Context, in ProjectInput) (*control.Project, error) {
	if err := s.validateProject(&in); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	p := &control.Project{
		ID:             control.NewID("prj"),
		Name:           in.Name,
		RepoURL:        in.RepoURL,
		Branch:         in.Branch,
		Framework:      in.Framework,
		InstallCommand: in.InstallCommand,
		BuildCommand:   in.BuildCommand,
		OutputDir:      in.OutputDir,
		GitHubRepo:     in.GitHubRepo,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	if p.GitHubRepo != "" {
		// Other projects get one on demand (RotateWebhookSecret).
		hook, err := s.sealNewWebhookSecret(ctx)
		if err != nil {
			return nil, err
		}
		p.WebhookSecret = hook
	}
	if in.GitToken != "" {
		sealed, err := s.deps.Sealer.Seal(ctx, []byte(in.GitToken))
		if err != nil {
			return nil, fmt.Errorf("seal git token: %w", err)
		}
		p.GitToken = []byte(sealed)
	}
	if err := s.deps.Store.CreateProject(ctx, p); err != nil {
		if errors.Is(err, control.ErrConflict) {
			return nil, fmt.Errorf("project %q already exists: %w", in.Name, err)
		}
		return nil, fmt.Errorf("create project: %w", err)
	}
	s.log.Info("project created", "project", p.ID, "name", p.Name)
	return p, nil
}

// Project finds a project by ID or name.
func (s *Service) Project(ctx context.Context, idOrName string) (*control.Project, error) {
	return s.deps.Store.GetProject(ctx, idOrName)
}

// Projects lists every project.
func (s *Service) Projects(ctx context.Context) ([]*control.Project, error) {
	return s.deps.Store.ListProjects(ctx)
}

// DeleteProject removes a project, its deployments and its pointers. The
// edges stop serving it at once.
func (s *Service) DeleteProject(ctx context.Context, idOrName string) error {
	p, err := s.deps.Store.GetProject(ctx, idOrName)
	if err != nil {
		return err
	}
	ds, err := s.deps.Store.ListDeployments(ctx, p.ID, 0)
	if err != nil {
		return err
	}
	for _, d := range ds {
		s.cancelRunning(d.ID)
	}
	if err := s.deps.Router.Forget(ctx, p.ID); err != nil {
		return fmt.Errorf("delete project %s: %w", p.Name, err)
	}
	for _, d := range ds {
		if err := s.deps.Router.Retract(ctx, d.ID); err != nil {
			s.log.Warn("retract deployment", "deployment", d.ID, "err", err)
		}
	}
	if err := s.deps.Store.DeleteProject(ctx, p.ID); err != nil {
		return fmt.Errorf("delete project %s: %w", p.Name, err)
	}
	s.log.Info("project deleted", "project", p.ID, "name", p.Name)
	return nil
}

// RewrapSecrets re-encrypts every stored secret (git tokens, webhook
// secrets, environment variable values) under the newest key version,
// after a key rotation (Vault: transit/keys/<key>/rotate; local: the
// keyring's Rotate). It returns how many values it rewrote; values already
// under the newest version are left as they are. The environments frozen
// with existing deployments keep their ciphertexts: they stay readable as
// long as the old key versions are (Vault's min_decryption_version).
func (s *Service) RewrapSecrets(ctx context.Context) (int, error) {
	ps, err := s.deps.Store.ListProjects(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	// rewrap returns the new ciphertext, or "" when it is already current.
	rewrap := func(sealed string) (string, error) {
		if sealed == "" {
			return "", nil
		}
		wrapped, err := s.deps.Sealer.Rewrap(ctx, sealed)
		if err != nil || keyVersion(wrapped) == keyVersion(sealed) {
			return "", err
		}
		return wrapped, nil
	}
	for _, p := range ps {
		token, err := rewrap(string(p.GitToken))
		if err != nil {
			return n, fmt.Errorf("rewrap the git token of %s: %w", p.Name, err)
		}
		hook, err := rewrap(string(p.WebhookSecret))
		if err != nil {
			return n, fmt.Errorf("rewrap the webhook secret of %s: %w", p.Name, err)
		}
		if token != "" || hook != "" {
			if token != "" {
				p.GitToken = []byte(token)
				n++
			}
			if hook != "" {
				p.WebhookSecret = []byte(hook)
				n++
			}
			if err := s.deps.Store.UpdateProject(ctx, p); err != nil {
				return n, fmt.Errorf("rewrap the secrets of %s: %w", p.Name, err)
			}
		}
		vars, err := s.deps.Store.ListEnvVars(ctx, p.ID)
		if err != nil {
			return n, err
		}
		for _, v := range vars {
			sealed, err := rewrap(v.Sealed)
			if err != nil {
				return n, fmt.Errorf("rewrap variable %s of %s: %w", v.Name, p.Name, err)
			}
			if sealed == "" {
				continue
			}
			v.Sealed = sealed // UpdatedAt kept: the value did not change
			if err := s.deps.Store.PutEnvVar(ctx, v); err != nil {
				return n, fmt.Errorf("rewrap variable %s of %s: %w", v.Name, p.Name, err)
			}
			n++
		}
	}
	s.log.Info("secrets rewrapped", "values", n)
	return n, nil
}

// keyVersion is the "vN" of a "<engine>:vN:<data>" ciphertext (Vault
// transit's form, which the local keyring copies).
func keyVersion(ciphertext string) string {
	parts := strings.SplitN(ciphertext, ":", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

// Active returns the project's live production deployment ID, or "".
func (s *Service) Active(ctx context.Context, projectID string) (string, error) {
	return s.deps.Router.Active(ctx, projectID, control.Production)
}

// DeployInput asks for a deployment.
type DeployInput struct {
	Ref         string // commit SHA or branch; default: the project's branch
	Environment string // "production" (default), "preview", "staging" or "sandbox:<name>" (see Stage)
	// Branch names the branch of a SHA Ref (a preview then gets the
	// branch's URL and variables); a branch Ref is its own branch.
	Branch string
}

// CreateDeployment queues a build of ref. Production deployments go live
// when their build succeeds; previews of a branch go live at the branch's
// URL, <branch-slug>.<project>.<base-domain>; every deployment is also
// served at <deployment-id>.<project>.<base-domain> once ready.
func (s *Service) CreateDeployment(ctx context.Context, projectID string, in DeployInput) (*control.Deployment, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	if p.RepoURL == "" {
		return nil, control.Invalid("repo_url", "project %s has no repository to build: deploy a directory (pier deploy), or recreate it with a repo_url", p.Name)
	}
	if in.Ref == "" {
		in.Ref = p.Branch
	}
	if !shaRE.MatchString(in.Ref) && !validBranch(in.Ref) {
		return nil, control.Invalid("ref", "must be a commit SHA or a branch name")
	}
	if in.Branch != "" && !validBranch(in.Branch) {
		return nil, control.Invalid("branch", "is not a valid branch name")
	}
	if in.Branch == "" && !shaRE.MatchString(in.Ref) {
		in.Branch = in.Ref
	}
	env, alias, err := Stage(in.Environment, in.Branch)
	if err != nil {
		return nil, err
	}
	d := &control.Deployment{
		Ref:         in.Ref,
		Environment: env,
		Alias:       alias,
		Branch:      in.Branch,
		Source:      control.SourceAPI,
	}
	return s.create(ctx, p, d)
}

// create resolves and freezes d's environment, stores it (queued, or
// awaiting approval) and reports it on its commit.
func (s *Service) create(ctx context.Context, p *control.Project, d *control.Deployment) (*control.Deployment, error) {
	if d.ID == "" {
		d.ID = control.NewID("dpl")
	}
	d.ProjectID = p.ID
	d.CreatedAt = time.Now().UTC()
	if d.State != control.StateAwaitingApproval {
		d.State = control.StateQueued
	}
	if !d.Fork { // pull requests from forks get no secrets
		env, err := s.resolveEnv(ctx, p.ID, d.Environment, d.Branch)
		if err != nil {
			return nil, err
		}
		d.Env = env
	}
	// Reported before the job is visible to a worker, so GitHub never gets
	// "queued" after "building".
	if d.State == control.StateAwaitingApproval {
		s.report(ctx, p, d, "pending", "Waiting for a project admin to approve the build (pull request from a fork)")
	} else {
		s.report(ctx, p, d, "pending", "Queued")
	}
	if err := s.deps.Store.CreateDeployment(ctx, d); err != nil {
		s.report(ctx, p, d, "error", "The deployment could not be created")
		return nil, fmt.Errorf("create deployment: %w", err)
	}
	s.log.Info("deployment created", "project", p.ID, "deployment", d.ID, "ref", d.Ref,
		"environment", d.Environment, "alias", d.Alias, "state", d.State, "variables", len(d.Env))
	d.Env = nil
	if d.State == control.StateQueued {
		s.Kick()
	}
	return d, nil
}

// Deployment returns one deployment.
func (s *Service) Deployment(ctx context.Context, id string) (*control.Deployment, error) {
	return s.deps.Store.GetDeployment(ctx, id)
}

// Deployments lists a project's deployments, newest first.
func (s *Service) Deployments(ctx context.Context, projectID string, limit int) ([]*control.Deployment, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	return s.deps.Store.ListDeployments(ctx, p.ID, limit)
}

// Log returns a deployment's build log from offset.
func (s *Service) Log(ctx context.Context, deploymentID string, offset int64) ([]byte, error) {
	if _, err := s.deps.Store.GetDeployment(ctx, deploymentID); err != nil {
		return nil, err
	}
	return s.deps.Store.Log(ctx, deploymentID, offset)
}

// Cancel stops a queued or building deployment.
func (s *Service) Cancel(ctx context.Context, deploymentID string) (*control.Deployment, error) {
	d, err := s.deps.Store.GetDeployment(ctx, deploymentID)
	if err != nil {
		return nil, err
	}
	if d.State.Final() {
		return nil, fmt.Errorf("deployment is already %s: %w", d.State, control.ErrConflict)
	}
	if s.cancelRunning(d.ID) {
		// The worker records the canceled state when the build returns.
		return d, nil
	}
	d.State = control.StateCanceled
	d.FinishedAt = time.Now().UTC()
	if err := s.deps.Store.UpdateDeployment(ctx, d); err != nil {
		return nil, err
	}
	if p, err := s.deps.Store.GetProject(ctx, d.ProjectID); err == nil {
		s.report(ctx, p, d, "error", "Canceled")
	}
	return d, nil
}

func (s *Service) cancelRunning(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cancel, ok := s.running[id]; ok {
		cancel()
		return true
	}
	return false
}

// Promote makes a ready deployment live for its project's production
// environment, through the all-edges-ready cutover. The project's
// post-deploy hook runs afterwards, in the background.
func (s *Service) Promote(ctx context.Context, deploymentID string) (*Cutover, error) {
	c, p, d, err := s.promote(ctx, deploymentID)
	if err != nil {
		return nil, err
	}
	s.fireHook(p, d, control.HookPostDeploy, c.Previous, "")
	return c, nil
}

func (s *Service) promote(ctx context.Context, deploymentID string) (*Cutover, *control.Project, *control.Deployment, error) {
	d, err := s.deps.Store.GetDeployment(ctx, deploymentID)
	if err != nil {
		return nil, nil, nil, err
	}
	if d.State != control.StateReady {
		return nil, nil, nil, fmt.Errorf("deployment %s is %s, only ready deployments can go live: %w", d.ID, d.State, control.ErrConflict)
	}
	p, err := s.deps.Store.GetProject(ctx, d.ProjectID)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := s.deps.Router.Promote(ctx, p.ID, p.Name, control.Production, d.ID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("promote %s: %w", d.ID, err)
	}
	s.log.Info("deployment live", "project", p.ID, "deployment", d.ID, "previous", c.Previous, "took", c.Total)
	return c, p, d, nil
}

// Rollback points production back at an earlier ready deployment: toID, or
// when empty the newest ready deployment older than the live one. Nothing
// is rebuilt or re-uploaded. The project's post-rollback hook runs
// afterwards, in the background.
func (s *Service) Rollback(ctx context.Context, projectID, toID string) (*Cutover, error) {
	p, err := s.deps.Store.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	if toID == "" {
		active, err := s.deps.Router.Active(ctx, p.ID, control.Production)
		if err != nil {
			return nil, err
		}
		ds, err := s.deps.Store.ListDeployments(ctx, p.ID, 0)
		if err != nil {
			return nil, err
		}
		var activeAt time.Time
		for _, d := range ds {
			if d.ID == active {
				activeAt = d.CreatedAt
			}
		}
		for _, d := range ds { // newest first
			if d.ID != active && d.State == control.StateReady && d.Environment == control.Production &&
				(activeAt.IsZero() || d.CreatedAt.Before(activeAt)) {
				toID = d.ID
				break
			}
		}
		if toID == "" {
			return nil, fmt.Errorf("no earlier ready deployment to roll back to: %w", control.ErrConflict)
		}
	}
	d, err := s.deps.Store.GetDeployment(ctx, toID)
	if err != nil {
		return nil, err
	}
	if d.ProjectID != p.ID {
		return nil, fmt.Errorf("deployment %s: %w", toID, control.ErrNotFound)
	}
	c, p, d, err := s.promote(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	s.fireHook(p, d, control.HookPostRollback, c.Previous, "")
	return c, nil
}
