package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pierhq/pier/control"
)

// ---- queues ----

// SendMessages appends messages in one transaction.
func (s *Store) SendMessages(ctx context.Context, msgs []*control.Message) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, m := range msgs {
			if m.ID == "" {
				m.ID = control.NewID("msg")
			}
			m.State, m.CreatedAt, m.Attempts = control.MessageReady, now, 0
			if m.VisibleAt.IsZero() {
				m.VisibleAt = now
			}
			m.VisibleAt = m.VisibleAt.UTC().Truncate(time.Microsecond)
			if _, err := tx.Exec(ctx, `INSERT INTO queue_messages (id, project_id, queue, body, state, attempts, visible_at, created_at, last_error)
				VALUES ($1, $2, $3, $4, $5, 0, $6, $7, '')`, m.ID, m.ProjectID, m.Queue, string(m.Body), m.State,
				m.VisibleAt.UnixNano(), now.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	if pgCode(err) == foreignKeyViolation {
		return fmt.Errorf("project: %w", control.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("send messages: %w", err)
	}
	return nil
}

const msgCols = `id, project_id, queue, body, state, attempts, visible_at, created_at, last_error`

func scanMessage(row pgx.Row) (*control.Message, error) {
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

// ClaimMessages takes visible messages with FOR UPDATE SKIP LOCKED, so
// concurrent claimers never take the same message.
func (s *Store) ClaimMessages(ctx context.Context, projectID, queue string, max int, now time.Time, visibility time.Duration) ([]*control.Message, error) {
	rows, err := s.pool.Query(ctx, `WITH picked AS (
			SELECT id, seq FROM queue_messages
			WHERE project_id = $1 AND queue = $2 AND state = 'ready' AND visible_at <= $3
			ORDER BY visible_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED)
		UPDATE queue_messages q SET attempts = q.attempts + 1, visible_at = $5
		FROM picked WHERE q.id = picked.id
		RETURNING q.id, q.project_id, q.queue, q.body, q.state, q.attempts, q.visible_at, q.created_at, q.last_error, q.seq`,
		projectID, queue, now.UnixNano(), max, now.Add(visibility).UnixNano())
	if err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	defer rows.Close()
	type seqMsg struct {
		m   *control.Message
		seq int64
	}
	var got []seqMsg
	for rows.Next() {
		var (
			m                control.Message
			body             string
			visible, created int64
			seq              int64
		)
		if err := rows.Scan(&m.ID, &m.ProjectID, &m.Queue, &body, &m.State, &m.Attempts, &visible, &created, &m.LastError, &seq); err != nil {
			return nil, fmt.Errorf("claim messages: %w", err)
		}
		m.Body, m.VisibleAt, m.CreatedAt = []byte(body), fromUnixNano(visible), fromUnixNano(created)
		got = append(got, seqMsg{&m, seq})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	// RETURNING has no order: sort by the queue's order.
	for i := 1; i < len(got); i++ {
		for j := i; j > 0 && got[j].seq < got[j-1].seq; j-- {
			got[j], got[j-1] = got[j-1], got[j]
		}
	}
	out := make([]*control.Message, 0, len(got))
	for _, g := range got {
		out = append(out, g.m)
	}
	return out, nil
}

// AckMessages deletes messages.
func (s *Store) AckMessages(ctx context.Context, ids []string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM queue_messages WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("ack messages: %w", err)
	}
	return nil
}

// RetryMessage schedules a message's next delivery.
func (s *Store) RetryMessage(ctx context.Context, id string, visibleAt time.Time, lastError string) error {
	return s.updateMessage(ctx, id, `UPDATE queue_messages SET visible_at = $1, last_error = $2 WHERE id = $3`, visibleAt.UnixNano(), lastError, id)
}

// DeadLetter moves a message to the dead letters.
func (s *Store) DeadLetter(ctx context.Context, id string, lastError string) error {
	return s.updateMessage(ctx, id, `UPDATE queue_messages SET state = 'dead', last_error = $1 WHERE id = $2`, lastError, id)
}

func (s *Store) updateMessage(ctx context.Context, id, q string, args ...any) error {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("update message: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("message %q: %w", id, control.ErrNotFound)
	}
	return nil
}

// ListMessages lists a queue's messages in a state.
func (s *Store) ListMessages(ctx context.Context, projectID, queue, state string, limit int) ([]*control.Message, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+msgCols+` FROM queue_messages WHERE project_id = $1 AND queue = $2 AND state = $3
		ORDER BY seq LIMIT $4`, projectID, queue, state, limit)
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
