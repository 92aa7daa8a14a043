package edge

import "encoding/json"

// Queue is a queue a deployment declares (pier.json "queues") with its
// consumer: a function of the server entry that receives batches of
// messages. Queues belong to the project and are consumed by its live
// production deployment.
type Queue struct {
	Name string `json:"name"`
	// Function is the consumer: a named export or a method of the default
	// export, called as fn(batch, env, ctx) with batch = {queue, messages:
	// [{id, body, attempts, timestamp}]}. It may return {retry: [ids]} to
	// retry some messages (partial failure); a throw retries them all.
	// Default "queue".
	Function string `json:"function,omitempty"`
	// BatchSize is the most messages per call (1..100, default 10).
	BatchSize int `json:"batch_size,omitempty"`
	// MaxAttempts is how many deliveries a message gets before it moves to
	// the dead-letter queue (1..100, default 3).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// RetryDelay is the first retry's delay in seconds, doubled per
	// attempt (default 1, at most 3600).
	RetryDelay int `json:"retry_delay,omitempty"`
	// VisibilityTimeout is how long, in seconds, a delivered batch stays
	// hidden before it is delivered again if the consumer never answered
	// (its control or edge died): default 60, at least 1.
	VisibilityTimeout int `json:"visibility_timeout,omitempty"`
}

// Defaults fills in Queue's zero fields.
func (q Queue) Defaults() Queue {
	if q.Function == "" {
		q.Function = "queue"
	}
	if q.BatchSize <= 0 {
		q.BatchSize = 10
	}
	if q.MaxAttempts <= 0 {
		q.MaxAttempts = 3
	}
	if q.RetryDelay <= 0 {
		q.RetryDelay = 1
	}
	if q.VisibilityTimeout <= 0 {
		q.VisibilityTimeout = 60
	}
	return q
}

// QueueSend is an env.QUEUE call (POST /v1/edge/queue, with the
// telemetry token).
type QueueSend struct {
	DeploymentID string            `json:"deployment_id"`
	Queue        string            `json:"queue"`
	Messages     []json.RawMessage `json:"messages"`
	Delay        float64           `json:"delay,omitempty"` // seconds
}
