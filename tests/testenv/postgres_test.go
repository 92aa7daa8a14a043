package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { Main(m) }

func TestPostgres(t *testing.T) {
	a, b := Postgres(t), Postgres(t)
	if a == b {
		t.Fatalf("two calls returned the same DSN %q", a)
	}
	ctx := t.Context()
	exec := func(dsn, sql string) ([]*pgconn.Result, error) {
		conn, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.Background())
		return conn.Exec(ctx, sql).ReadAll()
	}
	if _, err := exec(a, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatalf("create table in %s: %v", a, err)
	}
	res, err := exec(b, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")
	if err != nil {
		t.Fatalf("query %s: %v", b, err)
	}
	if got := string(res[0].Rows[0][0]); got != "0" {
		t.Errorf("a table created in one database is visible in the other (count %s)", got)
	}
	res, err = exec(a, "SELECT current_setting('server_version_num')::int / 10000, current_setting('fsync')")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server major version %s, fsync=%s", res[0].Rows[0][0], res[0].Rows[0][1])
}

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		name, dsn, want string
	}{
		{"url", "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "postgres://u:p@127.0.0.1:5432/t_1?sslmode=disable"},
		{"url without path", "postgresql://u@db.example.test", "postgresql://u@db.example.test/t_1"},
		{"key value", "host=/run/pg user=u dbname=postgres", "host=/run/pg user=u dbname=postgres dbname=t_1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withDatabase(tt.dsn, "t_1")
			if err != nil || got != tt.want {
				t.Errorf("withDatabase(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
			}
		})
	}
}
