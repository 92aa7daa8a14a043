// Package control is the control plane's vocabulary: the domain types
// (Project, Deployment, Token), the sentinel errors callers branch on, and
// the metadata Store port that both store adapters (sqlitestore, pgstore)
// implement and storetest checks.
//
// It imports only the standard library. Every package of the control tree
// may import it.
package control

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// Environment names an active-deployment pointer of a project.
const (
	Production = "production"
)

// Project is a git repository Pier builds and serves.
type Project struct {
	ID             string `json:"id"`
	Name           string `json:"name"` // DNS label: the <name>.<base-domain> host
	RepoURL        string `json:"repo_url"`
	Branch         string `json:"branch"`    // production branch, default "main"
	Framework      string `json:"framework"` // "" or "auto": detected at build time
	InstallCommand string `json:"install_command"`
	BuildCommand   string `json:"build_command"`
	OutputDir      string `json:"output_dir"`
	GitToken       []byte `json:"-"` // sealed (encrypted) access token, never plaintext
	// GitHubRepo is the repository's "owner/name" on GitHub, lowercase:
	// webhooks find the project by it, statuses are reported to it. Empty
	// when the project is not on GitHub.
	GitHubRepo string `json:"github_repo,omitempty"`
	// WebhookSecret is the sealed secret GitHub signs deliveries with.
	WebhookSecret []byte    `json:"-"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// State is where a deployment is in its life.
type State string

// Deployment states. queued → building → ready | failed | canceled; a
// deployment that needs an admin's approval first (a pull request from a
// fork) starts awaiting_approval, then becomes queued or canceled.
const (
	StateAwaitingApproval State = "awaiting_approval"
	StateQueued           State = "queued"
	StateBuilding         State = "building"
	StateReady            State = "ready"
	StateFailed           State = "failed"
	StateCanceled         State = "canceled"
)

// Final reports whether no further transition can happen.
func (s State) Final() bool {
	return s == StateReady || s == StateFailed || s == StateCanceled
}

// Deployment is one immutable build of one commit of a project.
type Deployment struct {
	ID          string `json:"id"`
	ProjectID   string `json:"project_id"`
	Ref         string `json:"ref"`         // what was asked for: a SHA or a branch
	CommitSHA   string `json:"commit_sha"`  // resolved by the builder when Ref is a branch
	Environment string `json:"environment"` // Production, Preview, Staging or Sandbox
	// Branch is the git branch the deployment was made from, when known:
	// environment variables targeted at a branch follow it.
	Branch string `json:"branch,omitempty"`
	// Alias is the pointer a preview is promoted to, served at
	// <alias>.<project>.<base-domain> (a DNS label, never "production" nor
	// a deployment ID); empty for production and for previews of a bare SHA.
	Alias string `json:"alias,omitempty"`
	// Source is what asked for the deployment: SourceAPI, SourceGitHub or
	// SourceUpload (files sent by a client, no build).
	Source      string    `json:"source,omitempty"`
	PullRequest int       `json:"pull_request,omitempty"` // GitHub pull request number
	Fork        bool      `json:"fork,omitempty"`         // from a fork: no secrets, approval first
	State       State     `json:"state"`
	Framework   string    `json:"framework,omitempty"` // detected or configured
	Error       string    `json:"error,omitempty"`     // user-safe reason for failed
	ManifestKey string    `json:"manifest_key,omitempty"`
	Files       int       `json:"files,omitempty"`
	Bytes       int64     `json:"bytes,omitempty"`
	Attempts    int       `json:"attempts"`
	CreatedAt   time.Time `json:"created_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`

	// Env is the deployment's environment, resolved and frozen (sealed
	// values) when it is created: CreateDeployment stores it in the same
	// transaction; read it back with Store.DeploymentEnv (GetDeployment
	// leaves it nil). Changing a project's variables never alters it.
	Env []DeploymentEnv `json:"-"`
}

// Preview is the environment of a branch's or a pull request's deployment.
const Preview = "preview"

// The other stages, each served at its own alias like a preview:
// staging at staging.<project>.<base-domain>, a developer's sandbox
// (environment "sandbox:<name>" in the API) at
// sandbox-<name>.<project>.<base-domain>. They get the variables targeted
// at them and those targeted at Preview.
const (
	Staging = "staging"
	Sandbox = "sandbox"
	// SandboxPrefix starts a sandbox's name in the API's environment
	// field ("sandbox:alice") and its alias ("sandbox-alice").
	SandboxPrefix = "sandbox:"
)

// Deployment sources.
const (
	SourceAPI    = "api"
	SourceGitHub = "github"
	SourceUpload = "upload"
)

// EnvScope says where an environment variable is visible.
type EnvScope string

// Environment variable scopes: the build (install and build commands), the
// runtime (the deployment's isolates), or both.
const (
	EnvBuild   EnvScope = "build"
	EnvRuntime EnvScope = "runtime"
	EnvBoth    EnvScope = "both"
)

// InBuild reports whether the scope reaches the build.
func (s EnvScope) InBuild() bool { return s == EnvBuild || s == EnvBoth }

// InRuntime reports whether the scope reaches the isolate.
func (s EnvScope) InRuntime() bool { return s == EnvRuntime || s == EnvBoth }

// TargetBranchPrefix starts a target naming one branch ("branch:feature/x"):
// the variable applies to previews of that branch.
const TargetBranchPrefix = "branch:"

// EnvVar is one of a project's environment variables. Its value is stored
// sealed only; the API never returns it.
type EnvVar struct {
	ProjectID string   `json:"project_id"`
	Name      string   `json:"name"`
	Sealed    string   `json:"-"` // ciphertext from the secrets port
	Scope     EnvScope `json:"scope"`
	// Targets: Production, Preview, Staging, Sandbox, or
	// TargetBranchPrefix+branch.
	Targets   []string  `json:"targets"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DeploymentEnv is one variable frozen with a deployment.
type DeploymentEnv struct {
	Name   string   `json:"name"`
	Scope  EnvScope `json:"scope"`
	Sealed string   `json:"-"`
}

// CommitStatus is a status reported on a commit (GitHub's statuses API).
type CommitStatus struct {
	Owner, Repo, SHA string
	State            string // "pending", "success", "failure" or "error"
	TargetURL        string
	Description      string // at most 140 characters
	Context          string // e.g. "pier/www"
}

// HookEvent names a point in a deployment's life at which a project's hook
// runs. Hooks never block nor fail a deployment.
type HookEvent string

// Hook events: before the build is dispatched, after a deployment went live
// (promoted), when a build failed (or was built but could not go live), and
// after a rollback went live.
const (
	HookPreBuild     HookEvent = "pre-build"
	HookPostDeploy   HookEvent = "post-deploy"
	HookDeployFailed HookEvent = "deploy-failed"
	HookPostRollback HookEvent = "post-rollback"
)

// HookEvents lists every hook event, in lifecycle order.
func HookEvents() []HookEvent {
	return []HookEvent{HookPreBuild, HookPostDeploy, HookDeployFailed, HookPostRollback}
}

// Valid reports whether e is one of HookEvents.
func (e HookEvent) Valid() bool {
	switch e {
	case HookPreBuild, HookPostDeploy, HookDeployFailed, HookPostRollback:
		return true
	}
	return false
}

// Hook is a project's code for one HookEvent: a script defining
// `async function handler(ctx)`, run in a V8 isolate with the event's
// context. It is not secret.
type Hook struct {
	ProjectID string    `json:"project_id"`
	Event     HookEvent `json:"event"`
	Code      string    `json:"code"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Token is an API token. Only the SHA-256 hash of the secret is stored.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scope     Scope     `json:"scope"`
	Hash      string    `json:"-"` // hex sha256 of the secret
	CreatedAt time.Time `json:"created_at"`
}

// Scope is what a token may do.
type Scope string

// Token scopes: read tokens may only list and get.
const (
	ScopeAdmin Scope = "admin"
	ScopeRead  Scope = "read"
)

// BuildJob is a claimed entry of the build queue.
type BuildJob struct {
	ID           int64
	DeploymentID string
	Attempt      int
	ClaimedBy    string
	ClaimedAt    time.Time
}

// Store is the metadata store. Implementations: control/store/sqlitestore
// (embedded) and control/store/pgstore (production). Both pass
// control/store/storetest.
//
// Not-found lookups return an error wrapping ErrNotFound; a unique-key
// violation (a second project with the same name) wraps ErrConflict.
type Store interface {
	DomainStore

	CreateProject(ctx context.Context, p *Project) error
	// GetProject finds a project by ID or by name.
	GetProject(ctx context.Context, idOrName string) (*Project, error)
	ListProjects(ctx context.Context) ([]*Project, error)
	// UpdateProject writes every mutable field of p (repo URL, branch,
	// framework, commands, output dir, sealed git token) and sets
	// UpdatedAt. The name is immutable: it is the project's host name.
	UpdateProject(ctx context.Context, p *Project) error
	// DeleteProject removes the project, its deployments, jobs and logs,
	// its environment variables, hooks and webhook deliveries.
	DeleteProject(ctx context.Context, id string) error
	// ProjectsByGitHubRepo lists the projects tracking a GitHub repository
	// ("owner/name", matched case-insensitively), ordered by name.
	ProjectsByGitHubRepo(ctx context.Context, repo string) ([]*Project, error)

	// CreateDeployment inserts d with its frozen environment (d.Env) in
	// one transaction: in state queued with its build job enqueued, or,
	// when d.State is StateAwaitingApproval, in that state with no job.
	CreateDeployment(ctx context.Context, d *Deployment) error
	// ApproveDeployment moves a deployment awaiting approval to queued and
	// enqueues its build job, atomically. A deployment in any other state
	// wraps ErrConflict.
	ApproveDeployment(ctx context.Context, id string) error
	// DeploymentEnv returns the environment frozen with a deployment,
	// ordered by name.
	DeploymentEnv(ctx context.Context, deploymentID string) ([]DeploymentEnv, error)
	GetDeployment(ctx context.Context, id string) (*Deployment, error)
	// ListDeployments lists a project's deployments, newest first.
	ListDeployments(ctx context.Context, projectID string, limit int) ([]*Deployment, error)
	// UpdateDeployment writes every mutable field of d (state, commit,
	// framework, error, manifest, counts, attempts, timestamps).
	UpdateDeployment(ctx context.Context, d *Deployment) error

	// ClaimBuild atomically takes the oldest unclaimed build job (FIFO) for
	// worker, or returns ErrNotFound when the queue is empty. No job is ever
	// handed to two claimers.
	ClaimBuild(ctx context.Context, worker string) (*BuildJob, error)
	// CompleteBuild removes a finished job from the queue.
	CompleteBuild(ctx context.Context, jobID int64) error
	// RequeueBuild puts a claimed job back (attempt+1) for a retry.
	RequeueBuild(ctx context.Context, jobID int64) error
	// ClaimedBuilds lists jobs claimed before the given time (stale claims
	// of a crashed worker), oldest first.
	ClaimedBuilds(ctx context.Context, before time.Time) ([]*BuildJob, error)

	// AppendLog appends a chunk to a deployment's build log.
	AppendLog(ctx context.Context, deploymentID string, chunk []byte) error
	// Log returns the build log from byte offset on.
	Log(ctx context.Context, deploymentID string, offset int64) ([]byte, error)

	// PutEnvVar creates or replaces the project's variable v.Name (value,
	// scope, targets). CreatedAt is kept from the first write; UpdatedAt is
	// v.UpdatedAt when set (a rewrap), else now. Both are written back.
	PutEnvVar(ctx context.Context, v *EnvVar) error
	// ListEnvVars lists a project's variables (sealed values included),
	// ordered by name.
	ListEnvVars(ctx context.Context, projectID string) ([]*EnvVar, error)
	// DeleteEnvVar removes a variable; an unknown one wraps ErrNotFound.
	DeleteEnvVar(ctx context.Context, projectID, name string) error

	// PutHook creates or replaces the project's hook for h.Event. CreatedAt
	// is kept from the first write, UpdatedAt is now; both are written
	// back. An unknown project wraps ErrNotFound.
	PutHook(ctx context.Context, h *Hook) error
	// GetHook returns the project's hook for event; none wraps ErrNotFound.
	GetHook(ctx context.Context, projectID string, event HookEvent) (*Hook, error)
	// ListHooks lists a project's hooks, ordered by event name.
	ListHooks(ctx context.Context, projectID string) ([]*Hook, error)
	// DeleteHook removes a hook; an unknown one wraps ErrNotFound.
	DeleteHook(ctx context.Context, projectID string, event HookEvent) error

	// RecordDelivery remembers a webhook delivery for a project; one seen
	// before wraps ErrConflict (GitHub redelivers: act once).
	RecordDelivery(ctx context.Context, projectID, deliveryID, event string) error
	// ForgetDelivery removes a recorded delivery (it could not be acted
	// on, so a redelivery should be).
	ForgetDelivery(ctx context.Context, projectID, deliveryID string) error
	// PruneDeliveries removes the deliveries received before the given
	// time and returns how many went.
	PruneDeliveries(ctx context.Context, before time.Time) (int64, error)

	CreateToken(ctx context.Context, t *Token) error
	// TokenByHash finds a token by the hex sha256 of its secret.
	TokenByHash(ctx context.Context, hash string) (*Token, error)
	ListTokens(ctx context.Context) ([]*Token, error)

	Telemetry
	DataStore
	ScheduleStore
	QueueStore

	Close() error
}

// NewID returns a random, DNS-label-safe identifier with the given prefix,
// e.g. "dpl-k3j9x0m2q8w4t6ya". IDs appear in host names
// (<deployment-id>.<project>.<base-domain>), hence lowercase base32.
func NewID(prefix string) string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return prefix + "-" + strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
