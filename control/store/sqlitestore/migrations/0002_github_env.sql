-- 0002_github_env: GitHub integration (repository, sealed webhook secret,
-- delivery log for idempotency), preview deployments (branch, alias,
-- source, pull request, fork) and environment variables (sealed values,
-- frozen per deployment). Every value column of env_vars and
-- deployment_env holds ciphertext from the secrets port, never plaintext.

ALTER TABLE projects ADD COLUMN github_repo TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN webhook_secret BLOB;
CREATE INDEX projects_by_github_repo ON projects (github_repo) WHERE github_repo <> '';

ALTER TABLE deployments ADD COLUMN branch TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN alias TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN pull_request INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN fork INTEGER NOT NULL DEFAULT 0;

CREATE TABLE env_vars (
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	value      TEXT NOT NULL, -- sealed
	scope      TEXT NOT NULL,
	targets    TEXT NOT NULL, -- JSON array of strings
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (project_id, name)
) STRICT, WITHOUT ROWID;

-- The environment a deployment was created with, frozen: later changes
-- to env_vars never reach an existing deployment.
CREATE TABLE deployment_env (
	deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	scope         TEXT NOT NULL,
	value         TEXT NOT NULL, -- sealed
	PRIMARY KEY (deployment_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE webhook_deliveries (
	project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	delivery_id TEXT NOT NULL,
	event       TEXT NOT NULL,
	received_at TEXT NOT NULL,
	PRIMARY KEY (project_id, delivery_id)
) STRICT, WITHOUT ROWID;
