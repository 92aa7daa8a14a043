-- 0003_hooks: deployment lifecycle hooks, one script per project and
-- event (pre-build, post-deploy, deploy-failed, post-rollback). The code
-- is not secret.

CREATE TABLE hooks (
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	event      TEXT NOT NULL,
	code       TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (project_id, event)
) STRICT, WITHOUT ROWID;
