package control

import (
	"context"
	"encoding/json"
	"time"
)

// Queue message states.
const (
	MessageReady = "ready" // waiting, or claimed until VisibleAt
	MessageDead  = "dead"  // moved to the dead-letter queue after its last attempt
)

// Queue limits.
const (
	MaxMessageBytes = 128 << 10 // one message body, as JSON
	MaxSendBatch    = 100       // messages in one send
)

// Message is one message of a project's queue.
type Message struct {
	ID        string          `json:"id"`
	ProjectID string          `json:"project_id"`
	Queue     string          `json:"queue"`
	Body      json.RawMessage `json:"body"`
	State     string          `json:"state"`
	Attempts  int             `json:"attempts"` // deliveries so far
	// VisibleAt is when the message can be delivered (again): a delay, a
	// retry's backoff, or the end of a claim's visibility timeout.
	VisibleAt time.Time `json:"visible_at"`
	CreatedAt time.Time `json:"created_at"`
	LastError string    `json:"last_error,omitempty"`
}

// QueueStore is the store's part for queues. A message lives in the store
// from its send until it is acknowledged: a consumer that dies mid-batch
// leaves it to be claimed again once its visibility timeout ends (at
// least once).
type QueueStore interface {
	// SendMessages appends messages (Body set; ID, State, VisibleAt,
	// CreatedAt filled in and written back; VisibleAt kept when set, a
	// delay). An unknown project wraps ErrNotFound.
	SendMessages(ctx context.Context, msgs []*Message) error
	// ClaimMessages takes up to max ready messages of a queue visible at
	// now, oldest first, atomically: each gets Attempts+1 and VisibleAt
	// now+visibility, so no other claimer takes it before then.
	ClaimMessages(ctx context.Context, projectID, queue string, max int, now time.Time, visibility time.Duration) ([]*Message, error)
	// AckMessages deletes delivered messages.
	AckMessages(ctx context.Context, ids []string) error
	// RetryMessage makes a message visible again at visibleAt, recording
	// the error.
	RetryMessage(ctx context.Context, id string, visibleAt time.Time, lastError string) error
	// DeadLetter moves a message to the dead-letter state.
	DeadLetter(ctx context.Context, id string, lastError string) error
	// ListMessages lists a queue's messages in a state, oldest first;
	// limit <= 0: 100.
	ListMessages(ctx context.Context, projectID, queue, state string, limit int) ([]*Message, error)
}
