-- 0006_data_schedules_queues: the per-project data store (env.DATA), one namespace per
-- (project, stage). Values are JSON text; labels a JSON array, indexed in
-- data_labels. Times are unix nanoseconds; expires_at 0 means never.

CREATE TABLE data_items (
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	stage      TEXT NOT NULL,
	key        TEXT NOT NULL,
	value      TEXT NOT NULL,
	labels     TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (project_id, stage, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX data_items_expiry ON data_items (expires_at) WHERE expires_at > 0;

CREATE TABLE data_labels (
	project_id TEXT NOT NULL,
	stage      TEXT NOT NULL,
	label      TEXT NOT NULL,
	key        TEXT NOT NULL,
	PRIMARY KEY (project_id, stage, label, key),
	FOREIGN KEY (project_id, stage, key) REFERENCES data_items (project_id, stage, key) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Runs of scheduled functions. The unique (project, schedule, period)
-- is the claim that makes a period fire once, across restarts and
-- controls. Times are unix nanoseconds; logs a JSON array.
CREATE TABLE schedule_runs (
	id            TEXT NOT NULL PRIMARY KEY,
	project_id    TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	deployment_id TEXT NOT NULL,
	schedule      TEXT NOT NULL,
	scheduled_at  INTEGER NOT NULL,
	started_at    INTEGER NOT NULL,
	finished_at   INTEGER NOT NULL,
	state         TEXT NOT NULL,
	edge          TEXT NOT NULL,
	error         TEXT NOT NULL,
	result        TEXT NOT NULL,
	logs          TEXT NOT NULL,
	trigger_kind  TEXT NOT NULL,
	UNIQUE (project_id, schedule, scheduled_at)
) STRICT;

CREATE INDEX schedule_runs_project ON schedule_runs (project_id, scheduled_at);

-- Queue messages, from send until acknowledged. visible_at (unix ns) is
-- when a message can be claimed: a claim pushes it by the visibility
-- timeout, so a consumer that dies leaves it to the next claim.
CREATE TABLE queue_messages (
	id         TEXT NOT NULL PRIMARY KEY,
	project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	queue      TEXT NOT NULL,
	body       TEXT NOT NULL,
	state      TEXT NOT NULL,
	attempts   INTEGER NOT NULL,
	visible_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	seq        INTEGER NOT NULL,
	last_error TEXT NOT NULL
) STRICT;

CREATE INDEX queue_messages_ready ON queue_messages (project_id, queue, state, visible_at, seq);
