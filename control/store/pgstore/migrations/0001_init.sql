-- 0001_init: projects, deployments, the build queue, build logs, API tokens.
-- The same schema as sqlitestore's 0001_init, in PostgreSQL types.

CREATE TABLE projects (
	id              text PRIMARY KEY,
	name            text NOT NULL UNIQUE,
	repo_url        text NOT NULL,
	branch          text NOT NULL,
	framework       text NOT NULL,
	install_command text NOT NULL,
	build_command   text NOT NULL,
	output_dir      text NOT NULL,
	git_token       bytea,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL
);

CREATE TABLE deployments (
	seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE, -- insertion order, breaks created_at ties
	id           text PRIMARY KEY,
	project_id   text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	ref          text NOT NULL,
	commit_sha   text NOT NULL,
	environment  text NOT NULL,
	state        text NOT NULL,
	framework    text NOT NULL,
	error        text NOT NULL,
	manifest_key text NOT NULL,
	files        integer NOT NULL,
	bytes        bigint NOT NULL,
	attempts     integer NOT NULL,
	created_at   timestamptz NOT NULL,
	started_at   timestamptz,
	finished_at  timestamptz
);

CREATE INDEX deployments_by_project ON deployments (project_id, created_at DESC, seq DESC);

-- The build queue. id is the FIFO order; claims take the first unlocked
-- unclaimed row (FOR UPDATE SKIP LOCKED).
CREATE TABLE build_jobs (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	deployment_id text NOT NULL UNIQUE REFERENCES deployments (id) ON DELETE CASCADE,
	attempt       integer NOT NULL DEFAULT 1,
	claimed_by    text,
	claimed_at    timestamptz
);

CREATE INDEX build_jobs_unclaimed ON build_jobs (id) WHERE claimed_by IS NULL;
CREATE INDEX build_jobs_claimed ON build_jobs (claimed_at, id) WHERE claimed_by IS NOT NULL;

-- Build logs as appended chunks; start_offset is the byte offset of the
-- chunk's first byte in the whole log.
CREATE TABLE build_logs (
	deployment_id text NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
	start_offset  bigint NOT NULL,
	data          bytea NOT NULL,
	PRIMARY KEY (deployment_id, start_offset)
);

CREATE TABLE tokens (
	id         text PRIMARY KEY,
	name       text NOT NULL,
	scope      text NOT NULL DEFAULT 'admin',
	hash       text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL
);
