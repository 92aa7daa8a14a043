package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/pierhq/pier/control"
)

// ---- queues ----

// SendMessages appends messages in one transaction.
func (s *Store) SendMessages(ctx context.Context, msgs []*control.Message) error {
	now := norm(time.Now())
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var seq int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM queue_messages`).Scan(&seq); err != nil {
			return err
		}
		for _, m := range msgs {
			seq++
			if m.ID == "" {
				m.ID = control.NewID("msg")
			}
			m.State, m.CreatedAt, m.Attempts = control.MessageReady, now, 0
			m.VisibleAt = norm(m.VisibleAt)
			if m.VisibleAt.IsZero() {
				m.VisibleAt = now
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO queue_messages (id, project_id, queue, body, state, attempts, visible_at, created_at, seq, last_error)
				VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, '')`, m.ID, m.ProjectID, m.Queue, string(m.Body), m.State,
				m.VisibleAt.UnixNano(), now.UnixNano(), seq); err != nil {
				return err
			}
		}
		return nil
	})
	if isForeignKey(err) {
		return fmt.Errorf("project: %w", control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("send messages: %w", err)
	}
	return nil
}

const msgCols = `id, project_id, queue, body, state, attempts, visible_at, created_at, last_error`

func scanMessage(row scanner) (*control.Message, error) {
	var (
		m                control.Message
		body             string
		visible, created int64
	)
	if err := row.Scan(&m.ID, &m.ProjectID, &m.Queue, &body, &m.State, &m.Attempts, &visible, &created, &m.LastError); err != nil {
		return nil, err
	}
	m.Body, m.VisibleAt, m.CreatedAt = []byte(body), fromUnixNano(visible), fromUnixNano(created)
	return &m, nil
}

// ClaimMessages takes visible messages; SQLite's single writer makes it atomic.
func (s *Store) ClaimMessages(ctx context.Context, projectID, queue string, max int, now time.Time, visibility time.Duration) ([]*control.Message, error) {
	out := []*control.Message{}
	until := now.Add(visibility).UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM queue_messages
			WHERE project_id = ? AND queue = ? AND state = 'ready' AND visible_at <= ?
			ORDER BY visible_at, seq LIMIT ?`, projectID, queue, now.UnixNano(), max)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			m, err := scanMessage(tx.QueryRowContext(ctx, `UPDATE queue_messages SET attempts = attempts + 1, visible_at = ?
				WHERE id = ? RETURNING `+msgCols, until, id))
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	return out, nil
}

// AckMessages deletes messages.
func (s *Store) AckMessages(ctx context.Context, ids []string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM queue_messages WHERE id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ack messages: %w", err)
	}
	return nil
}

// RetryMessage schedules a message's next delivery.
func (s *Store) RetryMessage(ctx context.Context, id string, visibleAt time.Time, lastError string) error {
	return s.updateMessage(ctx, `UPDATE queue_messages SET visible_at = ?, last_error = ? WHERE id = ?`, visibleAt.UnixNano(), lastError, id)
}

// DeadLetter moves a message to the dead letters.
func (s *Store) DeadLetter(ctx context.Context, id string, lastError string) error {
	return s.updateMessage(ctx, `UPDATE queue_messages SET state = 'dead', last_error = ? WHERE id = ?`, lastError, id)
}

func (s *Store) updateMessage(ctx context.Context, q string, args ...any) error {
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("update message: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("message %v: %w", args[len(args)-1], control.ErrNotFound)
	}
	return nil
}

// ListMessages lists a queue's messages in a state.
func (s *Store) ListMessages(ctx context.Context, projectID, queue, state string, limit int) ([]*control.Message, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+msgCols+` FROM queue_messages WHERE project_id = ? AND queue = ? AND state = ?
		ORDER BY seq LIMIT ?`, projectID, queue, state, limit)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	out := []*control.Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
