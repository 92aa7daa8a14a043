-- 0006_data_schedules_queues: the same schema change as sqlitestore's 0006, in PostgreSQL
-- types. Keys and labels sort in byte order (COLLATE "C"), as in SQLite.

CREATE TABLE data_items (
	project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	stage      text NOT NULL,
	key        text COLLATE "C" NOT NULL,
	value      text NOT NULL,
	labels     text NOT NULL,
	expires_at bigint NOT NULL,
	updated_at bigint NOT NULL,
	PRIMARY KEY (project_id, stage, key)
);

CREATE INDEX data_items_expiry ON data_items (expires_at) WHERE expires_at > 0;

CREATE TABLE data_labels (
	project_id text NOT NULL,
	stage      text NOT NULL,
	label      text COLLATE "C" NOT NULL,
	key        text COLLATE "C" NOT NULL,
	PRIMARY KEY (project_id, stage, label, key),
	FOREIGN KEY (project_id, stage, key) REFERENCES data_items (project_id, stage, key) ON DELETE CASCADE
);

-- Runs of scheduled functions (see sqlitestore's 0006).
CREATE TABLE schedule_runs (
	id            text NOT NULL PRIMARY KEY,
	project_id    text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	deployment_id text NOT NULL,
	schedule      text NOT NULL,
	scheduled_at  bigint NOT NULL,
	started_at    bigint NOT NULL,
	finished_at   bigint NOT NULL,
	state         text NOT NULL,
	edge          text NOT NULL,
	error         text NOT NULL,
	result        text NOT NULL,
	logs          text NOT NULL,
	trigger_kind  text NOT NULL,
	UNIQUE (project_id, schedule, scheduled_at)
);

CREATE INDEX schedule_runs_project ON schedule_runs (project_id, scheduled_at);

-- Queue messages (see sqlitestore's 0006).
CREATE TABLE queue_messages (
	id         text NOT NULL PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	queue      text NOT NULL,
	body       text NOT NULL,
	state      text NOT NULL,
	attempts   integer NOT NULL,
	visible_at bigint NOT NULL,
	created_at bigint NOT NULL,
	seq        bigserial NOT NULL,
	last_error text NOT NULL
);

CREATE INDEX queue_messages_ready ON queue_messages (project_id, queue, state, visible_at, seq);
