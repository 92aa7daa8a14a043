// Package pgstore is the production metadata store: control.Store on
// PostgreSQL through pgx (pgxpool). sqlitestore is its embedded twin, and
// both pass control/store/storetest.
//
// Open migrates the schema (embedded, versioned in schema_migrations)
// under an advisory lock, so several control instances can start at once.
// The build queue is claimed with SELECT ... FOR UPDATE SKIP LOCKED, FIFO
// by job ID. Vendor errors are translated here: unique violations (23505)
// wrap control.ErrConflict, pgx.ErrNoRows and foreign-key violations on a
// missing parent wrap control.ErrNotFound. pgx types never leave the
// package.
//
// Timestamps are timestamptz (microseconds); the store rounds them down
// to microseconds in UTC on write and writes the stored values back into
// the caller's struct, as sqlitestore does.
//
// This is the only package that imports pgx (outside test support). It
// imports control; only control/cmd/pier and test-support packages import
// it.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pierhq/pier/control"
)

var _ control.Store = (*Store)(nil)

// PostgreSQL error codes (SQLSTATE) the store translates.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// Store is control.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, with pgxpool's pool_* parameters) and migrates it to the current
// schema.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "pgstore")
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error can quote the DSN, password included.
		return nil, errors.New("open postgres store: invalid connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := migrate(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate postgres store: %w", err)
	}
	return &Store{pool: pool, logger: logger}, nil
}

// Close closes the connection pool, waiting for connections in use.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// ---- projects ----

const projectCols = `id, name, repo_url, branch, framework, install_command, build_command, output_dir, git_token,
	github_repo, webhook_secret, created_at, updated_at`

func (s *Store) CreateProject(ctx context.Context, p *control.Project) error {
	c := *p
	if c.ID == "" {
		c.ID = control.NewID("prj")
	}
	c.CreatedAt = normOrNow(c.CreatedAt)
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	c.UpdatedAt = norm(c.UpdatedAt)
	c.GitHubRepo = strings.ToLower(c.GitHubRepo)
	_, err := s.pool.Exec(ctx, `INSERT INTO projects (`+projectCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		c.ID, c.Name, c.RepoURL, c.Branch, c.Framework, c.InstallCommand, c.BuildCommand, c.OutputDir,
		c.GitToken, c.GitHubRepo, c.WebhookSecret, c.CreatedAt, c.UpdatedAt)
	if err != nil {
		if pgCode(err) == uniqueViolation {
			return fmt.Errorf("project %q already exists: %w", c.Name, control.ErrConflict)
		}
		return fmt.Errorf("create project: %w", err)
	}
	*p = c
	return nil
}

func (s *Store) UpdateProject(ctx context.Context, p *control.Project) error {
	updated := norm(time.Now())
	repo := strings.ToLower(p.GitHubRepo)
	tag, err := s.pool.Exec(ctx, `UPDATE projects SET repo_url = $1, branch = $2, framework = $3, install_command = $4,
		build_command = $5, output_dir = $6, git_token = $7, github_repo = $8, webhook_secret = $9, updated_at = $10
		WHERE id = $11`,
		p.RepoURL, p.Branch, p.Framework, p.InstallCommand, p.BuildCommand, p.OutputDir, p.GitToken, repo,
		p.WebhookSecret, updated, p.ID)
	if err != nil {
		return fmt.Errorf("update project: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("project %q: %w", p.ID, control.ErrNotFound)
	}
	p.UpdatedAt, p.GitHubRepo = updated, repo
	return nil
}

func (s *Store) GetProject(ctx context.Context, idOrName string) (*control.Project, error) {
	// An ID match wins over a name match.
	row := s.pool.QueryRow(ctx, `SELECT `+projectCols+` FROM projects
		WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1`, idOrName)
	p, err := scanProject(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("project %q: %w", idOrName, control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get project: %w", err)
	}
	return p, nil
}

func (s *Store) ListProjects(ctx context.Context) ([]*control.Project, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+projectCols+` FROM projects ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	out, err := collect(rows, scanProject)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return out, nil
}

// DeleteProject removes the project; its deployments, build jobs and logs
// go with it (ON DELETE CASCADE).
func (s *Store) DeleteProject(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM projects WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete project: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("project %q: %w", id, control.ErrNotFound)
	}
	return nil
}

// ProjectsByGitHubRepo lists the projects tracking repo, by name.
func (s *Store) ProjectsByGitHubRepo(ctx context.Context, repo string) ([]*control.Project, error) {
	if repo == "" {
		return []*control.Project{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+projectCols+` FROM projects WHERE github_repo = $1 ORDER BY name`,
		strings.ToLower(repo))
	if err != nil {
		return nil, fmt.Errorf("projects by repository: %w", err)
	}
	out, err := collect(rows, scanProject)
	if err != nil {
		return nil, fmt.Errorf("projects by repository: %w", err)
	}
	return out, nil
}

func scanProject(row pgx.Row) (*control.Project, error) {
	var p control.Project
	err := row.Scan(&p.ID, &p.Name, &p.RepoURL, &p.Branch, &p.Framework, &p.InstallCommand, &p.BuildCommand,
		&p.OutputDir, &p.GitToken, &p.GitHubRepo, &p.WebhookSecret, &p.CreatedAt, &p.UpdatedAt)
	if err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return &p, nil
}

// ---- deployments ----

const deploymentCols = `id, project_id, ref, commit_sha, environment, state, framework, error, manifest_key,
	files, bytes, attempts, created_at, started_at, finished_at, branch, alias, source, pull_request, fork`

// CreateDeployment inserts d with its frozen environment, in state queued
// with its build job (or awaiting approval without one), in one
// transaction. An empty d.ID is filled in.
func (s *Store) CreateDeployment(ctx context.Context, d *control.Deployment) error {
	c := *d
	if c.ID == "" {
		c.ID = control.NewID("dpl")
	}
	if c.State != control.StateAwaitingApproval {
		c.State = control.StateQueued
	}
	c.CreatedAt = normOrNow(c.CreatedAt)
	c.StartedAt, c.FinishedAt = norm(c.StartedAt), norm(c.FinishedAt)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO deployments (`+deploymentCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
			c.ID, c.ProjectID, c.Ref, c.CommitSHA, c.Environment, string(c.State), c.Framework, c.Error,
			c.ManifestKey, c.Files, c.Bytes, c.Attempts, c.CreatedAt,
			nullTime(c.StartedAt), nullTime(c.FinishedAt), c.Branch, c.Alias, c.Source, c.PullRequest, c.Fork); err != nil {
			return err
		}
		for _, e := range c.Env {
			if _, err := tx.Exec(ctx, `INSERT INTO deployment_env (deployment_id, name, scope, value) VALUES ($1, $2, $3, $4)`,
				c.ID, e.Name, string(e.Scope), e.Sealed); err != nil {
				return err
			}
		}
		if c.State != control.StateQueued {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO build_jobs (deployment_id) VALUES ($1)`, c.ID)
		return err
	})
	switch {
	case err == nil:
		*d = c
		return nil
	case pgCode(err) == foreignKeyViolation:
		return fmt.Errorf("project %q: %w", c.ProjectID, control.ErrNotFound)
	case pgCode(err) == uniqueViolation:
		return fmt.Errorf("deployment %q already exists: %w", c.ID, control.ErrConflict)
	default:
		return fmt.Errorf("create deployment: %w", err)
	}
}

func (s *Store) GetDeployment(ctx context.Context, id string) (*control.Deployment, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = $1`, id)
	d, err := scanDeployment(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("deployment %q: %w", id, control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get deployment: %w", err)
	}
	return d, nil
}

// ListDeployments lists a project's deployments, newest first; limit <= 0
// means no limit. An unknown project has no deployments.
func (s *Store) ListDeployments(ctx context.Context, projectID string, limit int) ([]*control.Deployment, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deploymentCols+` FROM deployments
		WHERE project_id = $1 ORDER BY created_at DESC, seq DESC LIMIT $2`, projectID, lim)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	out, err := collect(rows, scanDeployment)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	return out, nil
}

// UpdateDeployment writes d's mutable fields: state, commit, framework,
// error, manifest key, counts, attempts, started and finished times. The
// project, ref, environment and creation time never change.
func (s *Store) UpdateDeployment(ctx context.Context, d *control.Deployment) error {
	started, finished := norm(d.StartedAt), norm(d.FinishedAt)
	tag, err := s.pool.Exec(ctx, `UPDATE deployments SET state = $1, commit_sha = $2, framework = $3, error = $4,
		manifest_key = $5, files = $6, bytes = $7, attempts = $8, started_at = $9, finished_at = $10 WHERE id = $11`,
		string(d.State), d.CommitSHA, d.Framework, d.Error, d.ManifestKey, d.Files, d.Bytes, d.Attempts,
		nullTime(started), nullTime(finished), d.ID)
	if err != nil {
		return fmt.Errorf("update deployment: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("deployment %q: %w", d.ID, control.ErrNotFound)
	}
	d.StartedAt, d.FinishedAt = started, finished
	return nil
}

// ApproveDeployment queues a deployment awaiting approval: state and job
// in one transaction, the row locked against a concurrent approval.
func (s *Store) ApproveDeployment(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM deployments WHERE id = $1 FOR UPDATE`, id).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("deployment %q: %w", id, control.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("approve deployment: %w", err)
		}
		if control.State(state) != control.StateAwaitingApproval {
			return fmt.Errorf("deployment %s is %s, not awaiting approval: %w", id, state, control.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE deployments SET state = $1 WHERE id = $2`, string(control.StateQueued), id); err != nil {
			return fmt.Errorf("approve deployment: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO build_jobs (deployment_id) VALUES ($1)`, id); err != nil {
			return fmt.Errorf("approve deployment: %w", err)
		}
		return nil
	})
}

// DeploymentEnv returns the deployment's frozen environment by name. An
// unknown deployment wraps ErrNotFound.
func (s *Store) DeploymentEnv(ctx context.Context, deploymentID string) ([]control.DeploymentEnv, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, scope, value FROM deployment_env WHERE deployment_id = $1 ORDER BY name`, deploymentID)
	if err != nil {
		return nil, fmt.Errorf("deployment env: %w", err)
	}
	envs, err := collect(rows, func(row pgx.Row) (*control.DeploymentEnv, error) {
		var e control.DeploymentEnv
		return &e, row.Scan(&e.Name, &e.Scope, &e.Sealed)
	})
	if err != nil {
		return nil, fmt.Errorf("deployment env: %w", err)
	}
	out := make([]control.DeploymentEnv, 0, len(envs))
	for _, e := range envs {
		out = append(out, *e)
	}
	if len(out) == 0 {
		var one int
		err := s.pool.QueryRow(ctx, `SELECT 1 FROM deployments WHERE id = $1`, deploymentID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("deployment %q: %w", deploymentID, control.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("deployment env: %w", err)
		}
	}
	return out, nil
}

func scanDeployment(row pgx.Row) (*control.Deployment, error) {
	var d control.Deployment
	var state string
	var started, finished *time.Time
	err := row.Scan(&d.ID, &d.ProjectID, &d.Ref, &d.CommitSHA, &d.Environment, &state, &d.Framework, &d.Error,
		&d.ManifestKey, &d.Files, &d.Bytes, &d.Attempts, &d.CreatedAt, &started, &finished,
		&d.Branch, &d.Alias, &d.Source, &d.PullRequest, &d.Fork)
	if err != nil {
		return nil, err
	}
	d.State = control.State(state)
	d.CreatedAt = d.CreatedAt.UTC()
	d.StartedAt, d.FinishedAt = fromNull(started), fromNull(finished)
	return &d, nil
}

// ---- build queue ----

const jobCols = `id, deployment_id, attempt, claimed_by, claimed_at`

// ClaimBuild takes the oldest unclaimed job that no other transaction is
// claiming (FOR UPDATE SKIP LOCKED), so concurrent claimers never wait on
// each other and never get the same job.
func (s *Store) ClaimBuild(ctx context.Context, worker string) (*control.BuildJob, error) {
	if worker == "" {
		return nil, control.Invalid("worker", "must not be empty")
	}
	var j *control.BuildJob
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `SELECT id FROM build_jobs WHERE claimed_by IS NULL
			ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1`).Scan(&id); err != nil {
			return err
		}
		var err error
		j, err = scanJob(tx.QueryRow(ctx, `UPDATE build_jobs SET claimed_by = $1, claimed_at = $2
			WHERE id = $3 RETURNING `+jobCols, worker, norm(time.Now()), id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("build queue is empty: %w", control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("claim build: %w", err)
	}
	return j, nil
}

func (s *Store) CompleteBuild(ctx context.Context, jobID int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM build_jobs WHERE id = $1`, jobID)
	if err != nil {
		return fmt.Errorf("complete build: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("build job %d: %w", jobID, control.ErrNotFound)
	}
	return nil
}

// RequeueBuild releases a claimed job with attempt+1. It keeps its place
// (its ID), so the retry is the next job claimed. Requeueing a job that is
// not claimed (say, a second reaper got there first) wraps ErrConflict.
func (s *Store) RequeueBuild(ctx context.Context, jobID int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var claimedBy *string
		err := tx.QueryRow(ctx, `SELECT claimed_by FROM build_jobs WHERE id = $1 FOR UPDATE`, jobID).Scan(&claimedBy)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("build job %d: %w", jobID, control.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("requeue build: %w", err)
		}
		if claimedBy == nil {
			return fmt.Errorf("build job %d is not claimed: %w", jobID, control.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `UPDATE build_jobs SET attempt = attempt + 1, claimed_by = NULL,
			claimed_at = NULL WHERE id = $1`, jobID); err != nil {
			return fmt.Errorf("requeue build: %w", err)
		}
		return nil
	})
}

// ClaimedBuilds lists the jobs claimed strictly before the given time,
// oldest claim first.
func (s *Store) ClaimedBuilds(ctx context.Context, before time.Time) ([]*control.BuildJob, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+jobCols+` FROM build_jobs
		WHERE claimed_by IS NOT NULL AND claimed_at < $1 ORDER BY claimed_at, id`, norm(before))
	if err != nil {
		return nil, fmt.Errorf("list claimed builds: %w", err)
	}
	out, err := collect(rows, scanJob)
	if err != nil {
		return nil, fmt.Errorf("list claimed builds: %w", err)
	}
	return out, nil
}

func scanJob(row pgx.Row) (*control.BuildJob, error) {
	var j control.BuildJob
	var by *string
	var at *time.Time
	if err := row.Scan(&j.ID, &j.DeploymentID, &j.Attempt, &by, &at); err != nil {
		return nil, err
	}
	if by != nil {
		j.ClaimedBy = *by
	}
	j.ClaimedAt = fromNull(at)
	return &j, nil
}

// ---- build logs ----

// AppendLog appends chunk at the end of the deployment's log. An empty
// chunk is a no-op. An unknown deployment wraps ErrNotFound. Appends to one
// deployment are serialised by a lock on its row.
func (s *Store) AppendLog(ctx context.Context, deploymentID string, chunk []byte) error {
	if len(chunk) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM deployments WHERE id = $1 FOR NO KEY UPDATE`, deploymentID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("deployment %q: %w", deploymentID, control.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var end int64
		err = tx.QueryRow(ctx, `SELECT start_offset + octet_length(data) FROM build_logs
			WHERE deployment_id = $1 ORDER BY start_offset DESC LIMIT 1`, deploymentID).Scan(&end)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO build_logs (deployment_id, start_offset, data) VALUES ($1, $2, $3)`,
			deploymentID, end, chunk)
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, control.ErrNotFound):
		return err
	case pgCode(err) == foreignKeyViolation: // deleted meanwhile
		return fmt.Errorf("deployment %q: %w", deploymentID, control.ErrNotFound)
	default:
		return fmt.Errorf("append log: %w", err)
	}
}

// Log returns the deployment's log from byte offset on: empty (not an
// error) at or past the end. An unknown deployment wraps ErrNotFound.
func (s *Store) Log(ctx context.Context, deploymentID string, offset int64) ([]byte, error) {
	if offset < 0 {
		return nil, control.Invalid("offset", "must not be negative")
	}
	// Start at the chunk holding offset (the last one starting at or
	// before it), so a tailing reader does not rescan the whole log.
	rows, err := s.pool.Query(ctx, `SELECT start_offset, data FROM build_logs
		WHERE deployment_id = $1 AND start_offset >= COALESCE(
			(SELECT MAX(start_offset) FROM build_logs WHERE deployment_id = $1 AND start_offset <= $2), 0)
		ORDER BY start_offset`, deploymentID, offset)
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	defer rows.Close()
	out := []byte{}
	found := false
	for rows.Next() {
		var start int64
		var data []byte
		if err := rows.Scan(&start, &data); err != nil {
			return nil, fmt.Errorf("read log: %w", err)
		}
		found = true
		if skip := offset - start; skip > 0 {
			if skip >= int64(len(data)) {
				continue
			}
			data = data[skip:]
		}
		out = append(out, data...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	if !found {
		var one int
		err := s.pool.QueryRow(ctx, `SELECT 1 FROM deployments WHERE id = $1`, deploymentID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("deployment %q: %w", deploymentID, control.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("read log: %w", err)
		}
	}
	return out, nil
}

// ---- environment variables ----

// PutEnvVar upserts the variable (project, name).
func (s *Store) PutEnvVar(ctx context.Context, v *control.EnvVar) error {
	targets, err := json.Marshal(nonNil(v.Targets))
	if err != nil {
		return fmt.Errorf("put env var: %w", err)
	}
	updated := normOrNow(v.UpdatedAt)
	var created time.Time
	err = s.pool.QueryRow(ctx, `INSERT INTO env_vars (project_id, name, value, scope, targets, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6)
		ON CONFLICT (project_id, name) DO UPDATE SET value = excluded.value, scope = excluded.scope,
			targets = excluded.targets, updated_at = excluded.updated_at
		RETURNING created_at`,
		v.ProjectID, v.Name, v.Sealed, string(v.Scope), string(targets), updated).Scan(&created)
	if pgCode(err) == foreignKeyViolation {
		return fmt.Errorf("project %q: %w", v.ProjectID, control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put env var: %w", err)
	}
	v.CreatedAt, v.UpdatedAt, v.Targets = created.UTC(), updated, nonNil(v.Targets)
	return nil
}

// ListEnvVars lists a project's variables by name.
func (s *Store) ListEnvVars(ctx context.Context, projectID string) ([]*control.EnvVar, error) {
	rows, err := s.pool.Query(ctx, `SELECT project_id, name, value, scope, targets, created_at, updated_at
		FROM env_vars WHERE project_id = $1 ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list env vars: %w", err)
	}
	out, err := collect(rows, func(row pgx.Row) (*control.EnvVar, error) {
		var v control.EnvVar
		var targets string
		if err := row.Scan(&v.ProjectID, &v.Name, &v.Sealed, &v.Scope, &targets, &v.CreatedAt, &v.UpdatedAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(targets), &v.Targets); err != nil {
			return nil, fmt.Errorf("targets of %s: %w", v.Name, err)
		}
		v.Targets = nonNil(v.Targets)
		v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
		return &v, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list env vars: %w", err)
	}
	return out, nil
}

// DeleteEnvVar removes a variable.
func (s *Store) DeleteEnvVar(ctx context.Context, projectID, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM env_vars WHERE project_id = $1 AND name = $2`, projectID, name)
	if err != nil {
		return fmt.Errorf("delete env var: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("variable %q: %w", name, control.ErrNotFound)
	}
	return nil
}

// ---- webhook deliveries ----

// RecordDelivery inserts (project, delivery); a repeat wraps ErrConflict.
func (s *Store) RecordDelivery(ctx context.Context, projectID, deliveryID, event string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_deliveries (project_id, delivery_id, event) VALUES ($1, $2, $3)`,
		projectID, deliveryID, event)
	switch {
	case err == nil:
		return nil
	case pgCode(err) == uniqueViolation:
		return fmt.Errorf("delivery %q was already received: %w", deliveryID, control.ErrConflict)
	case pgCode(err) == foreignKeyViolation:
		return fmt.Errorf("project %q: %w", projectID, control.ErrNotFound)
	default:
		return fmt.Errorf("record delivery: %w", err)
	}
}

// ForgetDelivery removes a recorded delivery; a missing one is not an error.
func (s *Store) ForgetDelivery(ctx context.Context, projectID, deliveryID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM webhook_deliveries WHERE project_id = $1 AND delivery_id = $2`,
		projectID, deliveryID); err != nil {
		return fmt.Errorf("forget delivery: %w", err)
	}
	return nil
}

// PruneDeliveries removes the deliveries received before before.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_deliveries WHERE received_at < $1`, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ---- tokens ----

func (s *Store) CreateToken(ctx context.Context, t *control.Token) error {
	c := *t
	if c.ID == "" {
		c.ID = control.NewID("tok")
	}
	c.CreatedAt = normOrNow(c.CreatedAt)
	_, err := s.pool.Exec(ctx, `INSERT INTO tokens (id, name, scope, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		c.ID, c.Name, string(c.Scope), c.Hash, c.CreatedAt)
	if err != nil {
		if pgCode(err) == uniqueViolation {
			return fmt.Errorf("token already exists: %w", control.ErrConflict)
		}
		return fmt.Errorf("create token: %w", err)
	}
	*t = c
	return nil
}

func (s *Store) TokenByHash(ctx context.Context, hash string) (*control.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT id, name, scope, hash, created_at FROM tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("token: %w", control.ErrNotFound) // never echo the hash
	}
	if err != nil {
		return nil, fmt.Errorf("get token: %w", err)
	}
	return t, nil
}

func (s *Store) ListTokens(ctx context.Context) ([]*control.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, scope, hash, created_at FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := collect(rows, scanToken)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func scanToken(row pgx.Row) (*control.Token, error) {
	var t control.Token
	if err := row.Scan(&t.ID, &t.Name, &t.Scope, &t.Hash, &t.CreatedAt); err != nil {
		return nil, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return &t, nil
}

// ---- helpers ----

// collect scans every row; an empty result is an empty, non-nil slice.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (*T, error)) ([]*T, error) {
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// norm rounds t down to the stored precision (microseconds, UTC). The zero
// time stays zero (stored as NULL where a column allows it).
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func normOrNow(t time.Time) time.Time {
	if t.IsZero() {
		return norm(time.Now())
	}
	return norm(t)
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
