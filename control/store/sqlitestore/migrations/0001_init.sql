-- 0001_init: projects, deployments, the build queue, build logs, API tokens.
-- Timestamps are TEXT in UTC, fixed width with microseconds
-- ("2006-01-02T15:04:05.000000Z"), so they sort as text and match
-- PostgreSQL's timestamptz precision.

CREATE TABLE projects (
	id              TEXT PRIMARY KEY,
	name            TEXT NOT NULL UNIQUE,
	repo_url        TEXT NOT NULL,
	branch          TEXT NOT NULL,
	framework       TEXT NOT NULL,
	install_command TEXT NOT NULL,
	build_command   TEXT NOT NULL,
	output_dir      TEXT NOT NULL,
	git_token       BLOB,
	created_at      TEXT NOT NULL,
	updated_at      TEXT NOT NULL
) STRICT;

CREATE TABLE deployments (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order, breaks created_at ties
	id           TEXT NOT NULL UNIQUE,
	project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	ref          TEXT NOT NULL,
	commit_sha   TEXT NOT NULL,
	environment  TEXT NOT NULL,
	state        TEXT NOT NULL,
	framework    TEXT NOT NULL,
	error        TEXT NOT NULL,
	manifest_key TEXT NOT NULL,
	files        INTEGER NOT NULL,
	bytes        INTEGER NOT NULL,
	attempts     INTEGER NOT NULL,
	created_at   TEXT NOT NULL,
	started_at   TEXT,
	finished_at  TEXT
) STRICT;

CREATE INDEX deployments_by_project ON deployments (project_id, created_at DESC, seq DESC);

-- The build queue. id (never reused: AUTOINCREMENT) is the FIFO order.
CREATE TABLE build_jobs (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	deployment_id TEXT NOT NULL UNIQUE REFERENCES deployments (id) ON DELETE CASCADE,
	attempt       INTEGER NOT NULL DEFAULT 1,
	claimed_by    TEXT,
	claimed_at    TEXT
) STRICT;

CREATE INDEX build_jobs_unclaimed ON build_jobs (id) WHERE claimed_by IS NULL;
CREATE INDEX build_jobs_claimed ON build_jobs (claimed_at, id) WHERE claimed_by IS NOT NULL;

-- Build logs as appended chunks; start_offset is the byte offset of the
-- chunk's first byte in the whole log.
CREATE TABLE build_logs (
	deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
	start_offset  INTEGER NOT NULL,
	data          BLOB NOT NULL,
	PRIMARY KEY (deployment_id, start_offset)
) STRICT, WITHOUT ROWID;

CREATE TABLE tokens (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	scope      TEXT NOT NULL DEFAULT 'admin',
	hash       TEXT NOT NULL UNIQUE,
	created_at TEXT NOT NULL
) STRICT;
