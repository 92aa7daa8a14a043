package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/edge"
)

type fakeProjects struct {
	deps map[string]*control.Deployment
}

func (f *fakeProjects) Projects(context.Context) ([]*control.Project, error) {
	return []*control.Project{{ID: "prj", Name: "shop"}}, nil
}
func (f *fakeProjects) Active(context.Context, string) (string, error) { return "dpl-prod", nil }
func (f *fakeProjects) Deployment(_ context.Context, id string) (*control.Deployment, error) {
	if d, ok := f.deps[id]; ok {
		return d, nil
	}
	return nil, control.ErrNotFound
}

type fakeManifests struct{}

func (fakeManifests) Manifest(_ context.Context, id string) (*edge.Manifest, error) {
	return &edge.Manifest{DeploymentID: id, Queues: []edge.Queue{{Name: "jobs", BatchSize: 3, MaxAttempts: 2, RetryDelay: 5}}}, nil
}

// fakeRunner answers with the result, error or thrown error it is given.
type fakeRunner struct {
	mu      sync.Mutex
	batches []Batch
	answer  func(b Batch) (*edge.RunResult, error)
}

func (f *fakeRunner) Run(_ context.Context, req edge.RunRequest) (*edge.RunResult, error) {
	var b Batch
	_ = json.Unmarshal(req.Event, &b)
	f.mu.Lock()
	f.batches = append(f.batches, b)
	f.mu.Unlock()
	return f.answer(b)
}

// memStore is control.QueueStore in memory.
type memStore struct {
	mu   sync.Mutex
	msgs []*control.Message
}

func (m *memStore) SendMessages(_ context.Context, ms []*control.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range ms {
		x.ID, x.State, x.CreatedAt = control.NewID("msg"), control.MessageReady, time.Now()
		if x.VisibleAt.IsZero() {
			x.VisibleAt = x.CreatedAt
		}
		c := *x
		m.msgs = append(m.msgs, &c)
	}
	return nil
}

func (m *memStore) ClaimMessages(_ context.Context, p, q string, max int, now time.Time, vis time.Duration) ([]*control.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*control.Message
	for _, x := range m.msgs {
		if len(out) < max && x.ProjectID == p && x.Queue == q && x.State == control.MessageReady && !x.VisibleAt.After(now) {
			x.Attempts++
			x.VisibleAt = now.Add(vis)
			c := *x
			out = append(out, &c)
		}
	}
	return out, nil
}

func (m *memStore) find(id string) *control.Message {
	for _, x := range m.msgs {
		if x.ID == id {
			return x
		}
	}
	return nil
}

func (m *memStore) AckMessages(_ context.Context, ids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = slices.DeleteFunc(m.msgs, func(x *control.Message) bool { return slices.Contains(ids, x.ID) })
	return nil
}

func (m *memStore) RetryMessage(_ context.Context, id string, at time.Time, why string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	x := m.find(id)
	x.VisibleAt, x.LastError = at, why
	return nil
}

func (m *memStore) DeadLetter(_ context.Context, id, why string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	x := m.find(id)
	x.State, x.LastError = control.MessageDead, why
	return nil
}

func (m *memStore) ListMessages(_ context.Context, p, q, state string, _ int) ([]*control.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*control.Message
	for _, x := range m.msgs {
		if x.ProjectID == p && x.Queue == q && x.State == state {
			c := *x
			out = append(out, &c)
		}
	}
	return out, nil
}

type noLeader struct{}

func (noLeader) Lead(ctx context.Context, _, _ string, fn func(context.Context)) error {
	fn(ctx)
	return nil
}

func newTest(runner *fakeRunner) (*Service, *memStore) {
	st := &memStore{}
	projects := &fakeProjects{deps: map[string]*control.Deployment{
		"dpl-prod":  {ID: "dpl-prod", ProjectID: "prj", Environment: control.Production},
		"dpl-stage": {ID: "dpl-stage", ProjectID: "prj", Environment: control.Staging},
	}}
	return New(Config{}, Deps{Projects: projects, Manifests: fakeManifests{}, Runner: runner, Leader: noLeader{}, Store: st}), st
}

func body(i int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)) }

// TestDeliver: a partial failure retries only the failed messages, with
// the backoff; a throw retries them all; the last attempt dead-letters.
func TestDeliver(t *testing.T) {
	ctx := t.Context()
	var failIDs []string
	runner := &fakeRunner{}
	s, st := newTest(runner)
	ids, err := s.SendFromDeployment(ctx, "dpl-prod", "jobs", []json.RawMessage{body(1), body(2), body(3), body(4)}, 0)
	if err != nil || len(ids) != 4 {
		t.Fatalf("send: %v %v", ids, err)
	}
	p := &control.Project{ID: "prj", Name: "shop"}
	q := edge.Queue{Name: "jobs", BatchSize: 3, MaxAttempts: 2, RetryDelay: 5}.Defaults()

	// Batch 1: the second message fails.
	runner.answer = func(b Batch) (*edge.RunResult, error) {
		failIDs = []string{b.Messages[1].ID}
		out, _ := json.Marshal(map[string]any{"retry": failIDs})
		return &edge.RunResult{Result: out}, nil
	}
	start := time.Now()
	s.deliver(ctx, p, "dpl-prod", q)
	if len(runner.batches) != 1 || len(runner.batches[0].Messages) != 3 || runner.batches[0].Messages[0].Attempts != 1 {
		t.Fatalf("first batch = %+v", runner.batches)
	}
	if len(st.msgs) != 2 {
		t.Fatalf("after a partial failure %d messages left, want 2 (the failed one and the 4th)", len(st.msgs))
	}
	retried := st.find(failIDs[0])
	if retried == nil || retried.VisibleAt.Before(start.Add(5*time.Second)) || retried.LastError == "" {
		t.Errorf("retried message = %+v, want visible after the 5 s backoff", retried)
	}

	// Batch 2: only the 4th is visible; the consumer throws.
	runner.answer = func(Batch) (*edge.RunResult, error) { return &edge.RunResult{Error: "Error: boom"}, nil }
	s.deliver(ctx, p, "dpl-prod", q)
	if got := runner.batches[1].Messages; len(got) != 1 || got[0].ID != ids[3] {
		t.Fatalf("second batch = %+v, want only the 4th message (the retried one waits)", got)
	}
	if m := st.find(ids[3]); m == nil || m.State != control.MessageReady || m.LastError != "Error: boom" {
		t.Errorf("a thrown batch's message = %+v, want ready for a retry", m)
	}

	// Both back after their backoff, attempt 2 = MaxAttempts: the edge is
	// unreachable, so both go to the dead letters.
	st.mu.Lock()
	for _, m := range st.msgs {
		m.VisibleAt = time.Now()
	}
	st.mu.Unlock()
	runner.answer = func(Batch) (*edge.RunResult, error) { return nil, errors.New("no healthy edge could run the function") }
	s.deliver(ctx, p, "dpl-prod", q)
	dead, _ := s.Messages(ctx, "prj", "jobs", control.MessageDead, 0)
	if len(dead) != 2 || dead[0].Attempts != 2 || !strings.Contains(dead[0].LastError, "no healthy edge") {
		t.Errorf("dead letters = %+v, want both messages after 2 attempts", dead)
	}
	// An empty queue runs nothing.
	n := len(runner.batches)
	s.deliver(ctx, p, "dpl-prod", q)
	if len(runner.batches) != n {
		t.Error("an empty queue ran the consumer")
	}
}

func TestSendErrors(t *testing.T) {
	ctx := t.Context()
	s, st := newTest(&fakeRunner{})
	big := json.RawMessage(`"` + strings.Repeat("x", control.MaxMessageBytes) + `"`)
	many := make([]json.RawMessage, control.MaxSendBatch+1)
	for i := range many {
		many[i] = body(i)
	}
	for _, tc := range []struct {
		name       string
		deployment string
		queue      string
		bodies     []json.RawMessage
		delay      time.Duration
		want       string
	}{
		{"undeclared queue", "dpl-prod", "nope", []json.RawMessage{body(1)}, 0, `"nope" is not declared`},
		{"from staging", "dpl-stage", "jobs", []json.RawMessage{body(1)}, 0, "a staging deployment cannot send"},
		{"nothing", "dpl-prod", "jobs", nil, 0, "at least one message"},
		{"too many", "dpl-prod", "jobs", many, 0, "at most 100 messages"},
		{"too large", "dpl-prod", "jobs", []json.RawMessage{big}, 0, "larger than the limit of 131072 bytes"},
		{"not JSON", "dpl-prod", "jobs", []json.RawMessage{json.RawMessage(`{`)}, 0, "not JSON"},
		{"negative delay", "dpl-prod", "jobs", []json.RawMessage{body(1)}, -time.Second, "delay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.SendFromDeployment(ctx, tc.deployment, tc.queue, tc.bodies, tc.delay)
			var ve *control.ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("send = %v, want a ValidationError with %q", err, tc.want)
			}
		})
	}
	if _, err := s.SendFromDeployment(ctx, "dpl-none", "jobs", []json.RawMessage{body(1)}, 0); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("send from an unknown deployment: %v, want ErrNotFound", err)
	}
	if _, err := s.Send(ctx, "prj", "nope", []json.RawMessage{body(1)}, 0); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("API send to an undeclared queue: %v, want ErrNotFound", err)
	}
	if len(st.msgs) != 0 {
		t.Errorf("%d messages stored by refused sends", len(st.msgs))
	}
	if _, err := s.Messages(ctx, "prj", "jobs", "lost", 0); err == nil {
		t.Error("Messages with state lost: no error")
	}
}
