-- 0004_domains: the same schema change as sqlitestore's 0004, in
-- PostgreSQL types. Custom domains, one project per name.

CREATE TABLE domains (
	name        text NOT NULL PRIMARY KEY,
	project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
	token       text NOT NULL,
	state       text NOT NULL,
	created_at  timestamptz NOT NULL,
	verified_at timestamptz
);

CREATE INDEX domains_project ON domains (project_id, name);
