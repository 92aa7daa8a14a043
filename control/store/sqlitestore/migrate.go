package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"github.com/pierhq/pier/control/store/migrations"
	"log/slog"
	"time"
)

// migrationFiles holds the schema, one numbered file per version:
// migrations/0001_init.sql, 0002_....sql. Files are never edited once
// released; a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate applies the pending migrations in one IMMEDIATE transaction (db
// opens transactions with _txlock=immediate), so two processes opening the
// same file at once apply them exactly once: the second waits on the write
// lock (busy_timeout) and then finds nothing to do.
func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	ms, err := migrations.Load(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`); err != nil {
		return err
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	if current > len(ms) {
		return fmt.Errorf("database schema version %d is newer than this binary supports (%d)", current, len(ms))
	}
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, formatTime(time.Now())); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		logger.InfoContext(ctx, "applied migration", "version", m.Version, "name", m.Name)
	}
	return tx.Commit()
}
