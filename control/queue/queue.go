// Package queue runs a project's queues: messages sent from server code
// (env.QUEUE) or the API wait in the store until the consumer that the
// live production deployment declares (pier.json "queues") acknowledges
// them. Delivery is at least once: a batch is claimed with a visibility
// timeout (control.QueueStore.ClaimMessages), run on an edge isolate,
// then acknowledged, retried with exponential backoff (the consumer's
// {retry: [ids]}, or all of them when it throws) or, after MaxAttempts,
// moved to the dead letters. If control or the edge dies mid-batch, the
// batch becomes visible again when its timeout ends and is delivered
// again. The Dispatcher delivers only while it holds the "queues"
// leadership (edge/coord), so one control delivers at a time.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

// Projects lists the projects, their live production deployments, and
// finds deployments (deploy.Service).
type Projects interface {
	Projects(ctx context.Context) ([]*control.Project, error)
	Active(ctx context.Context, projectID string) (string, error)
	Deployment(ctx context.Context, id string) (*control.Deployment, error)
}

// Manifests reads a deployment's manifest (its queues). Manifests never
// change: implementations may keep them (pier keeps one shared copy).
type Manifests interface {
	Manifest(ctx context.Context, deploymentID string) (*edge.Manifest, error)
}

// Runner runs one function on an edge that holds the deployment.
type Runner interface {
	Run(ctx context.Context, req edge.RunRequest) (*edge.RunResult, error)
}

// Leader runs fn while this process leads.
type Leader interface {
	Lead(ctx context.Context, name, id string, fn func(ctx context.Context)) error
}

// Config configures the dispatcher.
type Config struct {
	ID string // names this control in the leadership lock
	// Poll is how often the leader looks for visible messages. Default 500ms.
	Poll   time.Duration
	Logger *slog.Logger
}

// Deps are the dispatcher's ports; all are required.
type Deps struct {
	Projects  Projects
	Manifests Manifests
	Runner    Runner
	Leader    Leader
	Store     control.QueueStore
}

// Service sends and delivers messages.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu   sync.Mutex
	busy map[string]bool // project/queue with a batch in flight
	wg   sync.WaitGroup
}

// New returns the service; it starts nothing.
func New(cfg Config, deps Deps) *Service {
	if deps.Projects == nil || deps.Manifests == nil || deps.Runner == nil || deps.Leader == nil || deps.Store == nil {
		panic("queue.New: nil dependency")
	}
	if cfg.ID == "" {
		cfg.ID = "control"
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, deps: deps, log: cfg.Logger.With("component", "queue"),
		busy: map[string]bool{}}
}

func (s *Service) manifest(ctx context.Context, dep string) (*edge.Manifest, error) {
	m, err := s.deps.Manifests.Manifest(ctx, dep)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", dep, err)
	}
	return m, nil
}

func find(m *edge.Manifest, name string) (edge.Queue, bool) {
	for _, q := range m.Queues {
		if q.Name == name {
			return q.Defaults(), true
		}
	}
	return edge.Queue{}, false
}

// Queues lists the queues of a project's live production deployment.
func (s *Service) Queues(ctx context.Context, projectID string) ([]edge.Queue, error) {
	dep, err := s.deps.Projects.Active(ctx, projectID)
	if err != nil || dep == "" {
		return []edge.Queue{}, err
	}
	m, err := s.manifest(ctx, dep)
	if err != nil {
		return nil, err
	}
	out := []edge.Queue{}
	for _, q := range m.Queues {
		out = append(out, q.Defaults())
	}
	return out, nil
}

// SendFromDeployment sends messages from a deployment's code: a
// production deployment to a queue its manifest declares.
func (s *Service) SendFromDeployment(ctx context.Context, deploymentID, queue string, bodies []json.RawMessage, delay time.Duration) ([]string, error) {
	d, err := s.deps.Projects.Deployment(ctx, deploymentID)
	if err != nil {
		return nil, err
	}
	if d.Environment != control.Production {
		return nil, control.Invalid("queue", "queues belong to the production deployment: a %s deployment cannot send", d.Environment)
	}
	m, err := s.manifest(ctx, deploymentID)
	if err != nil {
		return nil, err
	}
	if _, ok := find(m, queue); !ok {
		return nil, control.Invalid("queue", "%q is not declared in pier.json \"queues\"", queue)
	}
	return s.send(ctx, d.ProjectID, queue, bodies, delay)
}

// Send sends messages through the API to a queue the project's live
// production deployment declares.
func (s *Service) Send(ctx context.Context, projectID, queue string, bodies []json.RawMessage, delay time.Duration) ([]string, error) {
	dep, err := s.deps.Projects.Active(ctx, projectID)
	if err != nil {
		return nil, err
	}
	if dep == "" {
		return nil, fmt.Errorf("no live production deployment declares queue %q: %w", queue, control.ErrNotFound)
	}
	m, err := s.manifest(ctx, dep)
	if err != nil {
		return nil, err
	}
	if _, ok := find(m, queue); !ok {
		return nil, fmt.Errorf("queue %q: %w", queue, control.ErrNotFound)
	}
	return s.send(ctx, projectID, queue, bodies, delay)
}

func (s *Service) send(ctx context.Context, projectID, queue string, bodies []json.RawMessage, delay time.Duration) ([]string, error) {
	switch {
	case len(bodies) == 0:
		return nil, control.Invalid("messages", "send at least one message")
	case len(bodies) > control.MaxSendBatch:
		return nil, control.Invalid("messages", "at most %d messages per send, got %d", control.MaxSendBatch, len(bodies))
	case delay < 0 || delay > 12*time.Hour:
		return nil, control.Invalid("delay", "0 to 43200 seconds")
	}
	var at time.Time
	if delay > 0 {
		at = time.Now().Add(delay)
	}
	msgs := make([]*control.Message, 0, len(bodies))
	for i, b := range bodies {
		if len(b) == 0 || !json.Valid(b) {
			return nil, control.Invalid("messages", "message %d is not JSON", i+1)
		}
		if len(b) > control.MaxMessageBytes {
			return nil, control.Invalid("messages", "message %d: %d bytes is larger than the limit of %d bytes (as JSON)", i+1, len(b), control.MaxMessageBytes)
		}
		msgs = append(msgs, &control.Message{ProjectID: projectID, Queue: queue, Body: b, VisibleAt: at})
	}
	if err := s.deps.Store.SendMessages(ctx, msgs); err != nil {
		return nil, err
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids, nil
}

// Messages lists a queue's messages in a state (control.MessageDead: the
// dead letters).
func (s *Service) Messages(ctx context.Context, projectID, queue, state string, limit int) ([]*control.Message, error) {
	if state != control.MessageReady && state != control.MessageDead {
		return nil, control.Invalid("state", "ready or dead, not %q", state)
	}
	return s.deps.Store.ListMessages(ctx, projectID, queue, state, limit)
}

// Run delivers while this control leads, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	defer s.wg.Wait()
	err := s.deps.Leader.Lead(ctx, "queues", s.cfg.ID, func(lctx context.Context) {
		t := time.NewTicker(s.cfg.Poll)
		defer t.Stop()
		for {
			s.poll(lctx)
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
		}
	})
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}

// poll starts a batch for every queue with visible messages and no batch
// in flight.
func (s *Service) poll(ctx context.Context) {
	projects, err := s.deps.Projects.Projects(ctx)
	if err != nil {
		return
	}
	for _, p := range projects {
		dep, err := s.deps.Projects.Active(ctx, p.ID)
		if err != nil || dep == "" {
			continue
		}
		m, err := s.manifest(ctx, dep)
		if err != nil {
			continue
		}
		for _, q := range m.Queues {
			q = q.Defaults()
			key := p.ID + "/" + q.Name
			s.mu.Lock()
			if s.busy[key] {
				s.mu.Unlock()
				continue
			}
			s.busy[key] = true
			s.mu.Unlock()
			s.wg.Go(func() {
				defer func() {
					s.mu.Lock()
					delete(s.busy, key)
					s.mu.Unlock()
				}()
				s.deliver(ctx, p, dep, q)
			})
		}
	}
}

// batchMessage is a message as the consumer sees it.
type batchMessage struct {
	ID        string          `json:"id"`
	Body      json.RawMessage `json:"body"`
	Attempts  int             `json:"attempts"`
	Timestamp time.Time       `json:"timestamp"`
}

// Batch is the consumer's first argument.
type Batch struct {
	Queue    string         `json:"queue"`
	Messages []batchMessage `json:"messages"`
}

// deliver claims one batch of q and runs it. It returns once the batch
// is settled (acked, retried or dead-lettered).
func (s *Service) deliver(ctx context.Context, p *control.Project, dep string, q edge.Queue) {
	visibility := time.Duration(q.VisibilityTimeout) * time.Second
	msgs, err := s.deps.Store.ClaimMessages(ctx, p.ID, q.Name, q.BatchSize, time.Now(), visibility)
	if err != nil || len(msgs) == 0 {
		return
	}
	batch := Batch{Queue: q.Name}
	for _, m := range msgs {
		batch.Messages = append(batch.Messages, batchMessage{ID: m.ID, Body: m.Body, Attempts: m.Attempts, Timestamp: m.CreatedAt})
	}
	ev, _ := json.Marshal(batch)
	// The run must end before the claim does, or the batch may be
	// delivered twice at once.
	rctx, cancel := context.WithTimeout(ctx, visibility)
	defer cancel()
	runID := control.NewID("batch")
	res, err := s.deps.Runner.Run(rctx, edge.RunRequest{DeploymentID: dep, Function: q.Function, Event: ev, RunID: runID})
	if ctx.Err() != nil {
		return // leadership lost: the claim's timeout hands the batch over
	}
	failed := map[string]string{}
	switch {
	case err != nil:
		for _, m := range msgs {
			failed[m.ID] = err.Error()
		}
	case res.Error != "":
		for _, m := range msgs {
			failed[m.ID] = res.Error
		}
	default:
		var out struct {
			Retry []string `json:"retry"`
		}
		if json.Unmarshal(res.Result, &out) == nil {
			for _, id := range out.Retry {
				failed[id] = "the consumer asked for a retry"
			}
		}
	}
	var acks []string
	sctx := context.WithoutCancel(ctx)
	for _, m := range msgs {
		why, bad := failed[m.ID]
		switch {
		case !bad:
			acks = append(acks, m.ID)
		case m.Attempts >= q.MaxAttempts:
			if err := s.deps.Store.DeadLetter(sctx, m.ID, why); err != nil {
				s.log.Warn("dead-letter message", "message", m.ID, "err", err)
			}
			s.log.Info("message moved to the dead letters", "project", p.Name, "queue", q.Name, "message", m.ID, "attempts", m.Attempts, "error", why)
		default:
			backoff := time.Duration(q.RetryDelay) * time.Second << min(m.Attempts-1, 16)
			if err := s.deps.Store.RetryMessage(sctx, m.ID, time.Now().Add(backoff), why); err != nil {
				s.log.Warn("retry message", "message", m.ID, "err", err)
			}
		}
	}
	if len(acks) > 0 {
		if err := s.deps.Store.AckMessages(sctx, acks); err != nil {
			s.log.Warn("ack messages", "err", err)
		}
	}
	s.log.Debug("batch delivered", "project", p.Name, "queue", q.Name, "messages", len(msgs), "acked", len(acks), "failed", len(failed))
}
