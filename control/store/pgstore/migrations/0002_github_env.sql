-- 0002_github_env: the same schema change as sqlitestore's 0002, in
-- PostgreSQL types. Every value column of env_vars and deployment_env
-- holds ciphertext from the secrets port (vault:v1:...), never plaintext.

ALTER TABLE projects ADD COLUMN github_repo text NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN webhook_secret bytea;
CREATE INDEX projects_by_github_repo ON projects (github_repo) WHERE github_repo <> '';

ALTER TABLE deployments ADD COLUMN branch text NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN alias text NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN source text NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN pull_request integer NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN fork boolean NOT NULL DEFAULT false;

CREATE TABLE env_vars (
	project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	name       text NOT NULL,
	value      text NOT NULL, -- sealed
	scope      text NOT NULL,
	targets    text NOT NULL, -- JSON array of strings
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (project_id, name)
);

-- The environment a deployment was created with, frozen: later changes
-- to env_vars never reach an existing deployment.
CREATE TABLE deployment_env (
	deployment_id text NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
	name          text NOT NULL,
	scope         text NOT NULL,
	value         text NOT NULL, -- sealed
	PRIMARY KEY (deployment_id, name)
);

CREATE TABLE webhook_deliveries (
	project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	delivery_id text NOT NULL,
	event       text NOT NULL,
	received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (project_id, delivery_id)
);
