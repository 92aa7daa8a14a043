-- 0005_telemetry: runtime logs (console.* and access records) and request
-- metrics shipped by the edges. No foreign keys: edges ship what they
-- served, and rows of deleted projects age out with the retention.
-- Times are unix nanoseconds.

CREATE TABLE runtime_logs (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	project_id    TEXT NOT NULL,
	deployment_id TEXT NOT NULL,
	edge_id       TEXT NOT NULL,
	at            INTEGER NOT NULL,
	kind          TEXT NOT NULL,
	level         TEXT NOT NULL,
	request_id    TEXT NOT NULL,
	message       TEXT NOT NULL,
	method        TEXT NOT NULL,
	host          TEXT NOT NULL,
	path          TEXT NOT NULL,
	status        INTEGER NOT NULL,
	duration_us   INTEGER NOT NULL,
	start         TEXT NOT NULL
) STRICT;

CREATE INDEX runtime_logs_project ON runtime_logs (project_id, id);
CREATE INDEX runtime_logs_at ON runtime_logs (at);

CREATE TABLE metric_buckets (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	project_id    TEXT NOT NULL,
	deployment_id TEXT NOT NULL,
	edge_id       TEXT NOT NULL,
	bucket        INTEGER NOT NULL,
	data          BLOB NOT NULL
) STRICT;

CREATE INDEX metric_buckets_project ON metric_buckets (project_id, bucket);
