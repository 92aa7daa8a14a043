// Package sqlitestore is the embedded metadata store: control.Store on one
// SQLite file (by convention <data-dir>/control.db) through the pure-Go
// driver modernc.org/sqlite. It is what `pier dev` runs on; pgstore is the
// production twin, and both pass control/store/storetest.
//
// The file runs in WAL mode with foreign keys on. Writes go through a
// single connection, so writers in one process queue up in Go instead of
// failing with SQLITE_BUSY; reads use a separate pool of query-only
// connections, which WAL lets run beside the writer. busy_timeout and
// BEGIN IMMEDIATE cover a second process on the same file. The schema is
// versioned (schema_migrations) and migrated by Open.
//
// Timestamps are stored in UTC with microsecond precision, like
// PostgreSQL's timestamptz; the store rounds them down on write and writes
// the stored values back into the caller's struct.
//
// This is the only package that imports the SQLite driver. It imports
// control; only control/cmd/pier and test-support packages import it.
package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ control.Store = (*Store)(nil)

// Connection parameters (interpreted by modernc.org/sqlite, see its
// driver.go). The writer begins every transaction with BEGIN IMMEDIATE so a
// read-then-write transaction never has to upgrade its lock.
const (
	writerParams = "_busy_timeout=10000&_foreign_keys=1&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"
	readerParams = "_busy_timeout=10000&_foreign_keys=1&_query_only=1"
	maxReaders   = 4
)

// timeLayout is fixed width, so stored timestamps sort as text.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// Store is control.Store on SQLite. It is safe for concurrent use.
type Store struct {
	w      *sql.DB // exactly one connection: every write
	r      *sql.DB // query-only connections: every read outside a write
	logger *slog.Logger
}

// Open opens (creating it and its directory if needed) the SQLite database
// at path and migrates it to the current schema. A new file is created
// with mode 0600: it holds sealed git tokens and token hashes.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "sqlitestore")
	if path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store %s: path must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	f.Close()

	w, err := sql.Open("sqlite", path+"?"+writerParams)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := migrate(ctx, w, logger); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate sqlite store %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+readerParams)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	r.SetMaxOpenConns(maxReaders)
	r.SetMaxIdleConns(maxReaders)
	return &Store{w: w, r: r, logger: logger}, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
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
	_, err := s.w.ExecContext(ctx, `INSERT INTO projects (`+projectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.RepoURL, c.Branch, c.Framework, c.InstallCommand, c.BuildCommand, c.OutputDir,
		c.GitToken, c.GitHubRepo, c.WebhookSecret, formatTime(c.CreatedAt), formatTime(c.UpdatedAt))
	if err != nil {
		if isUnique(err) {
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
	res, err := s.w.ExecContext(ctx, `UPDATE projects SET repo_url = ?, branch = ?, framework = ?, install_command = ?,
		build_command = ?, output_dir = ?, git_token = ?, github_repo = ?, webhook_secret = ?, updated_at = ? WHERE id = ?`,
		p.RepoURL, p.Branch, p.Framework, p.InstallCommand, p.BuildCommand, p.OutputDir, p.GitToken,
		repo, p.WebhookSecret, formatTime(updated), p.ID)
	if err != nil {
		return fmt.Errorf("update project: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update project: %w", err)
	} else if n == 0 {
		return fmt.Errorf("project %q: %w", p.ID, control.ErrNotFound)
	}
	p.UpdatedAt, p.GitHubRepo = updated, repo
	return nil
}

func (s *Store) GetProject(ctx context.Context, idOrName string) (*control.Project, error) {
	// An ID match wins over a name match.
	row := s.r.QueryRowContext(ctx, `SELECT `+projectCols+` FROM projects
		WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1`, idOrName)
	p, err := scanProject(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("project %q: %w", idOrName, control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get project: %w", err)
	}
	return p, nil
}

func (s *Store) ListProjects(ctx context.Context) ([]*control.Project, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+projectCols+` FROM projects ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	defer rows.Close()
	out := []*control.Project{}
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("list projects: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return out, nil
}

// DeleteProject removes the project; its deployments, build jobs and logs
// go with it (ON DELETE CASCADE).
func (s *Store) DeleteProject(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM projects WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete project: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete project: %w", err)
	} else if n == 0 {
		return fmt.Errorf("project %q: %w", id, control.ErrNotFound)
	}
	return nil
}

// ProjectsByGitHubRepo lists the projects tracking repo, by name.
func (s *Store) ProjectsByGitHubRepo(ctx context.Context, repo string) ([]*control.Project, error) {
	out := []*control.Project{}
	if repo == "" {
		return out, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+projectCols+` FROM projects WHERE github_repo = ? ORDER BY name`,
		strings.ToLower(repo))
	if err != nil {
		return nil, fmt.Errorf("projects by repository: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("projects by repository: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projects by repository: %w", err)
	}
	return out, nil
}

func scanProject(sc scanner) (*control.Project, error) {
	var p control.Project
	err := sc.Scan(&p.ID, &p.Name, &p.RepoURL, &p.Branch, &p.Framework, &p.InstallCommand, &p.BuildCommand,
		&p.OutputDir, &p.GitToken, &p.GitHubRepo, &p.WebhookSecret, timeCol{&p.CreatedAt}, timeCol{&p.UpdatedAt})
	if err != nil {
		return nil, err
	}
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
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO deployments (`+deploymentCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.ProjectID, c.Ref, c.CommitSHA, c.Environment, string(c.State), c.Framework, c.Error,
			c.ManifestKey, c.Files, c.Bytes, c.Attempts, formatTime(c.CreatedAt),
			nullTime(c.StartedAt), nullTime(c.FinishedAt), c.Branch, c.Alias, c.Source, c.PullRequest, c.Fork); err != nil {
			return err
		}
		for _, e := range c.Env {
			if _, err := tx.ExecContext(ctx, `INSERT INTO deployment_env (deployment_id, name, scope, value) VALUES (?, ?, ?, ?)`,
				c.ID, e.Name, string(e.Scope), e.Sealed); err != nil {
				return err
			}
		}
		if c.State != control.StateQueued {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO build_jobs (deployment_id) VALUES (?)`, c.ID)
		return err
	})
	switch {
	case err == nil:
		*d = c
		return nil
	case isForeignKey(err):
		return fmt.Errorf("project %q: %w", c.ProjectID, control.ErrNotFound)
	case isUnique(err):
		return fmt.Errorf("deployment %q already exists: %w", c.ID, control.ErrConflict)
	default:
		return fmt.Errorf("create deployment: %w", err)
	}
}

func (s *Store) GetDeployment(ctx context.Context, id string) (*control.Deployment, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = ?`, id)
	d, err := scanDeployment(row)
	if errors.Is(err, sql.ErrNoRows) {
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
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+deploymentCols+` FROM deployments
		WHERE project_id = ? ORDER BY created_at DESC, seq DESC LIMIT ?`, projectID, limit)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	defer rows.Close()
	out := []*control.Deployment{}
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("list deployments: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	return out, nil
}

// UpdateDeployment writes d's mutable fields: state, commit, framework,
// error, manifest key, counts, attempts, started and finished times. The
// project, ref, environment and creation time never change.
func (s *Store) UpdateDeployment(ctx context.Context, d *control.Deployment) error {
	started, finished := norm(d.StartedAt), norm(d.FinishedAt)
	res, err := s.w.ExecContext(ctx, `UPDATE deployments SET state = ?, commit_sha = ?, framework = ?, error = ?,
		manifest_key = ?, files = ?, bytes = ?, attempts = ?, started_at = ?, finished_at = ? WHERE id = ?`,
		string(d.State), d.CommitSHA, d.Framework, d.Error, d.ManifestKey, d.Files, d.Bytes, d.Attempts,
		nullTime(started), nullTime(finished), d.ID)
	if err != nil {
		return fmt.Errorf("update deployment: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update deployment: %w", err)
	} else if n == 0 {
		return fmt.Errorf("deployment %q: %w", d.ID, control.ErrNotFound)
	}
	d.StartedAt, d.FinishedAt = started, finished
	return nil
}

// ApproveDeployment queues a deployment awaiting approval: state and job
// in one transaction.
func (s *Store) ApproveDeployment(ctx context.Context, id string) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM deployments WHERE id = ?`, id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("deployment %q: %w", id, control.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("approve deployment: %w", err)
		}
		if control.State(state) != control.StateAwaitingApproval {
			return fmt.Errorf("deployment %s is %s, not awaiting approval: %w", id, state, control.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET state = ? WHERE id = ?`, string(control.StateQueued), id); err != nil {
			return fmt.Errorf("approve deployment: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO build_jobs (deployment_id) VALUES (?)`, id); err != nil {
			return fmt.Errorf("approve deployment: %w", err)
		}
		return nil
	})
}

// DeploymentEnv returns the deployment's frozen environment by name. An
// unknown deployment wraps ErrNotFound.
func (s *Store) DeploymentEnv(ctx context.Context, deploymentID string) ([]control.DeploymentEnv, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, scope, value FROM deployment_env WHERE deployment_id = ? ORDER BY name`, deploymentID)
	if err != nil {
		return nil, fmt.Errorf("deployment env: %w", err)
	}
	defer rows.Close()
	out := []control.DeploymentEnv{}
	for rows.Next() {
		var e control.DeploymentEnv
		if err := rows.Scan(&e.Name, &e.Scope, &e.Sealed); err != nil {
			return nil, fmt.Errorf("deployment env: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deployment env: %w", err)
	}
	if len(out) == 0 {
		if err := s.deploymentExists(ctx, deploymentID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func scanDeployment(sc scanner) (*control.Deployment, error) {
	var d control.Deployment
	var state string
	err := sc.Scan(&d.ID, &d.ProjectID, &d.Ref, &d.CommitSHA, &d.Environment, &state, &d.Framework, &d.Error,
		&d.ManifestKey, &d.Files, &d.Bytes, &d.Attempts,
		timeCol{&d.CreatedAt}, timeCol{&d.StartedAt}, timeCol{&d.FinishedAt},
		&d.Branch, &d.Alias, &d.Source, &d.PullRequest, &d.Fork)
	if err != nil {
		return nil, err
	}
	d.State = control.State(state)
	return &d, nil
}

// ---- build queue ----

const jobCols = `id, deployment_id, attempt, claimed_by, claimed_at`

// ClaimBuild takes the oldest unclaimed job. The single writer connection
// runs one claim at a time, and the UPDATE picks and marks the job in one
// statement, so no job is handed out twice.
func (s *Store) ClaimBuild(ctx context.Context, worker string) (*control.BuildJob, error) {
	if worker == "" {
		return nil, control.Invalid("worker", "must not be empty")
	}
	row := s.w.QueryRowContext(ctx, `UPDATE build_jobs SET claimed_by = ?, claimed_at = ?
		WHERE id = (SELECT id FROM build_jobs WHERE claimed_by IS NULL ORDER BY id LIMIT 1)
		RETURNING `+jobCols, worker, formatTime(time.Now()))
	j, err := scanJob(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("build queue is empty: %w", control.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("claim build: %w", err)
	}
	return j, nil
}

func (s *Store) CompleteBuild(ctx context.Context, jobID int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM build_jobs WHERE id = ?`, jobID)
	if err != nil {
		return fmt.Errorf("complete build: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("complete build: %w", err)
	} else if n == 0 {
		return fmt.Errorf("build job %d: %w", jobID, control.ErrNotFound)
	}
	return nil
}

// RequeueBuild releases a claimed job with attempt+1. It keeps its place
// (its ID), so the retry is the next job claimed. Requeueing a job that is
// not claimed (say, a second reaper got there first) wraps ErrConflict.
func (s *Store) RequeueBuild(ctx context.Context, jobID int64) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		var claimedBy sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT claimed_by FROM build_jobs WHERE id = ?`, jobID).Scan(&claimedBy)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("build job %d: %w", jobID, control.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("requeue build: %w", err)
		}
		if !claimedBy.Valid {
			return fmt.Errorf("build job %d is not claimed: %w", jobID, control.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE build_jobs SET attempt = attempt + 1, claimed_by = NULL,
			claimed_at = NULL WHERE id = ?`, jobID); err != nil {
			return fmt.Errorf("requeue build: %w", err)
		}
		return nil
	})
}

// ClaimedBuilds lists the jobs claimed strictly before the given time,
// oldest claim first.
func (s *Store) ClaimedBuilds(ctx context.Context, before time.Time) ([]*control.BuildJob, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+jobCols+` FROM build_jobs
		WHERE claimed_by IS NOT NULL AND claimed_at < ? ORDER BY claimed_at, id`, formatTime(before))
	if err != nil {
		return nil, fmt.Errorf("list claimed builds: %w", err)
	}
	defer rows.Close()
	out := []*control.BuildJob{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list claimed builds: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list claimed builds: %w", err)
	}
	return out, nil
}

func scanJob(sc scanner) (*control.BuildJob, error) {
	var j control.BuildJob
	var by sql.NullString
	if err := sc.Scan(&j.ID, &j.DeploymentID, &j.Attempt, &by, timeCol{&j.ClaimedAt}); err != nil {
		return nil, err
	}
	j.ClaimedBy = by.String
	return &j, nil
}

// ---- build logs ----

// AppendLog appends chunk at the end of the deployment's log. An empty
// chunk is a no-op. An unknown deployment wraps ErrNotFound.
func (s *Store) AppendLog(ctx context.Context, deploymentID string, chunk []byte) error {
	if len(chunk) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var end int64
		err := tx.QueryRowContext(ctx, `SELECT start_offset + length(data) FROM build_logs
			WHERE deployment_id = ? ORDER BY start_offset DESC LIMIT 1`, deploymentID).Scan(&end)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO build_logs (deployment_id, start_offset, data) VALUES (?, ?, ?)`,
			deploymentID, end, chunk)
		return err
	})
	if isForeignKey(err) {
		return fmt.Errorf("deployment %q: %w", deploymentID, control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("append log: %w", err)
	}
	return nil
}

// Log returns the deployment's log from byte offset on: empty (not an
// error) at or past the end. An unknown deployment wraps ErrNotFound.
func (s *Store) Log(ctx context.Context, deploymentID string, offset int64) ([]byte, error) {
	if offset < 0 {
		return nil, control.Invalid("offset", "must not be negative")
	}
	// Start at the chunk holding offset (the last one starting at or
	// before it), so a tailing reader does not rescan the whole log.
	rows, err := s.r.QueryContext(ctx, `SELECT start_offset, data FROM build_logs
		WHERE deployment_id = ?1 AND start_offset >= COALESCE(
			(SELECT MAX(start_offset) FROM build_logs WHERE deployment_id = ?1 AND start_offset <= ?2), 0)
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
		if err := s.deploymentExists(ctx, deploymentID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) deploymentExists(ctx context.Context, id string) error {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM deployments WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("deployment %q: %w", id, control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("get deployment: %w", err)
	}
	return nil
}

// ---- environment variables ----

// PutEnvVar upserts the variable (project, name).
func (s *Store) PutEnvVar(ctx context.Context, v *control.EnvVar) error {
	targets, err := json.Marshal(nonNil(v.Targets))
	if err != nil {
		return fmt.Errorf("put env var: %w", err)
	}
	updated := normOrNow(v.UpdatedAt)
	var created string
	err = s.w.QueryRowContext(ctx, `INSERT INTO env_vars (project_id, name, value, scope, targets, created_at, updated_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
		ON CONFLICT (project_id, name) DO UPDATE SET value = excluded.value, scope = excluded.scope,
			targets = excluded.targets, updated_at = excluded.updated_at
		RETURNING created_at`,
		v.ProjectID, v.Name, v.Sealed, string(v.Scope), string(targets), formatTime(updated)).Scan(&created)
	if isForeignKey(err) {
		return fmt.Errorf("project %q: %w", v.ProjectID, control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put env var: %w", err)
	}
	var createdAt time.Time
	if err := (timeCol{&createdAt}).Scan(created); err != nil {
		return fmt.Errorf("put env var: %w", err)
	}
	v.CreatedAt, v.UpdatedAt, v.Targets = createdAt, updated, nonNil(v.Targets)
	return nil
}

// ListEnvVars lists a project's variables by name.
func (s *Store) ListEnvVars(ctx context.Context, projectID string) ([]*control.EnvVar, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT project_id, name, value, scope, targets, created_at, updated_at
		FROM env_vars WHERE project_id = ? ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list env vars: %w", err)
	}
	defer rows.Close()
	out := []*control.EnvVar{}
	for rows.Next() {
		var v control.EnvVar
		var targets string
		if err := rows.Scan(&v.ProjectID, &v.Name, &v.Sealed, &v.Scope, &targets,
			timeCol{&v.CreatedAt}, timeCol{&v.UpdatedAt}); err != nil {
			return nil, fmt.Errorf("list env vars: %w", err)
		}
		if err := json.Unmarshal([]byte(targets), &v.Targets); err != nil {
			return nil, fmt.Errorf("list env vars: targets of %s: %w", v.Name, err)
		}
		v.Targets = nonNil(v.Targets)
		out = append(out, &v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list env vars: %w", err)
	}
	return out, nil
}

// DeleteEnvVar removes a variable.
func (s *Store) DeleteEnvVar(ctx context.Context, projectID, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM env_vars WHERE project_id = ? AND name = ?`, projectID, name)
	if err != nil {
		return fmt.Errorf("delete env var: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete env var: %w", err)
	} else if n == 0 {
		return fmt.Errorf("variable %q: %w", name, control.ErrNotFound)
	}
	return nil
}

// ---- webhook deliveries ----

// RecordDelivery inserts (project, delivery); a repeat wraps ErrConflict.
func (s *Store) RecordDelivery(ctx context.Context, projectID, deliveryID, event string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO webhook_deliveries (project_id, delivery_id, event, received_at)
		VALUES (?, ?, ?, ?)`, projectID, deliveryID, event, formatTime(time.Now()))
	switch {
	case err == nil:
		return nil
	case isUnique(err):
		return fmt.Errorf("delivery %q was already received: %w", deliveryID, control.ErrConflict)
	case isForeignKey(err):
		return fmt.Errorf("project %q: %w", projectID, control.ErrNotFound)
	default:
		return fmt.Errorf("record delivery: %w", err)
	}
}

// ForgetDelivery removes a recorded delivery; a missing one is not an error.
func (s *Store) ForgetDelivery(ctx context.Context, projectID, deliveryID string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE project_id = ? AND delivery_id = ?`,
		projectID, deliveryID); err != nil {
		return fmt.Errorf("forget delivery: %w", err)
	}
	return nil
}

// PruneDeliveries removes the deliveries received before before.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE received_at < ?`, formatTime(before))
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return n, nil
}

// ---- tokens ----

func (s *Store) CreateToken(ctx context.Context, t *control.Token) error {
	c := *t
	if c.ID == "" {
		c.ID = control.NewID("tok")
	}
	c.CreatedAt = normOrNow(c.CreatedAt)
	_, err := s.w.ExecContext(ctx, `INSERT INTO tokens (id, name, scope, hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		c.ID, c.Name, string(c.Scope), c.Hash, formatTime(c.CreatedAt))
	if err != nil {
		if isUnique(err) {
			return fmt.Errorf("token already exists: %w", control.ErrConflict)
		}
		return fmt.Errorf("create token: %w", err)
	}
	*t = c
	return nil
}

func (s *Store) TokenByHash(ctx context.Context, hash string) (*control.Token, error) {
	var t control.Token
	err := s.r.QueryRowContext(ctx, `SELECT id, name, scope, hash, created_at FROM tokens WHERE hash = ?`, hash).
		Scan(&t.ID, &t.Name, &t.Scope, &t.Hash, timeCol{&t.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token: %w", control.ErrNotFound) // never echo the hash
	}
	if err != nil {
		return nil, fmt.Errorf("get token: %w", err)
	}
	return &t, nil
}

func (s *Store) ListTokens(ctx context.Context) ([]*control.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, scope, hash, created_at FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []*control.Token{}
	for rows.Next() {
		var t control.Token
		if err := rows.Scan(&t.ID, &t.Name, &t.Scope, &t.Hash, timeCol{&t.CreatedAt}); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, &t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// ---- helpers ----

// writeTx runs fn in a transaction on the writer connection (BEGIN
// IMMEDIATE), committing if fn returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback() //nolint:errcheck // the first error is the one to report
		return err
	}
	return tx.Commit()
}

type scanner interface {
	Scan(dest ...any) error
}

func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
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

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

// timeCol scans a stored timestamp (or NULL, as the zero time).
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	var s string
	switch v := v.(type) {
	case nil:
		*c.t = time.Time{}
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("timestamp column holds %T", v)
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return fmt.Errorf("timestamp column: %w", err)
	}
	*c.t = t
	return nil
}
