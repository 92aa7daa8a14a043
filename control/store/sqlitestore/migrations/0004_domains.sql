-- 0004_domains: custom domains. A name is claimed by one project at most
-- (the primary key); it is served once verified (TXT challenge and DNS
-- pointing at the edges).

CREATE TABLE domains (
	name        TEXT NOT NULL PRIMARY KEY,
	project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	token       TEXT NOT NULL,
	state       TEXT NOT NULL,
	created_at  TEXT NOT NULL,
	verified_at TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX domains_project ON domains (project_id, name);
