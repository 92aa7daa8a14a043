-- 0003_hooks: the same schema change as sqlitestore's 0003, in PostgreSQL
-- types. Deployment lifecycle hooks, one script per project and event.

CREATE TABLE hooks (
	project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	event      text NOT NULL,
	code       text NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (project_id, event)
);
