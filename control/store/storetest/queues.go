package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/control"
)

// testQueues pins queues: sends are claimed in order, a claim hides its
// messages until the visibility timeout ends (then they are claimed again,
// attempts counted), delayed messages wait, concurrent claimers never get
// the same message, acks delete, retries and dead letters are kept with
// their error, queues of one project and of two projects never mix.
func testQueues(t *testing.T, open func(t *testing.T) control.Store) {
	s := open(t)
	ctx := t.Context()
	p := &control.Project{Name: "q"}
	if err := s.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	send := func(queue string, n int, delay time.Duration) []*control.Message {
		t.Helper()
		var ms []*control.Message
		for i := range n {
			m := &control.Message{ProjectID: p.ID, Queue: queue, Body: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
			if delay > 0 {
				m.VisibleAt = time.Now().Add(delay)
			}
			ms = append(ms, m)
		}
		if err := s.SendMessages(ctx, ms); err != nil {
			t.Fatalf("SendMessages: %v", err)
		}
		return ms
	}
	ms := send("emails", 5, 0)
	if ms[0].ID == "" || ms[0].State != control.MessageReady || ms[0].CreatedAt.IsZero() {
		t.Errorf("sent message = %+v", ms[0])
	}
	send("other", 2, 0)
	send("emails", 1, time.Hour) // delayed

	now := time.Now()
	got, err := s.ClaimMessages(ctx, p.ID, "emails", 3, now, time.Minute)
	if err != nil || len(got) != 3 {
		t.Fatalf("ClaimMessages = %d, %v; want 3", len(got), err)
	}
	for i, m := range got {
		if m.ID != ms[i].ID || m.Attempts != 1 || string(m.Body) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("claimed %d = %+v, want %s attempt 1", i, m, ms[i].ID)
		}
	}
	rest, _ := s.ClaimMessages(ctx, p.ID, "emails", 10, now, time.Minute)
	if len(rest) != 2 || rest[0].ID != ms[3].ID {
		t.Fatalf("second claim = %d messages, want the 2 unclaimed (not the delayed one)", len(rest))
	}
	if none, _ := s.ClaimMessages(ctx, p.ID, "emails", 10, now, time.Minute); len(none) != 0 {
		t.Errorf("claim while all are hidden = %d messages", len(none))
	}
	// The visibility timeout ends: claimed again, attempt 2.
	again, _ := s.ClaimMessages(ctx, p.ID, "emails", 10, now.Add(2*time.Minute), time.Minute)
	if len(again) != 5 || again[0].Attempts != 2 {
		t.Fatalf("claim after the timeout = %d messages (attempts %v), want 5 at attempt 2", len(again), again)
	}
	if err := s.AckMessages(ctx, []string{ms[0].ID, ms[1].ID}); err != nil {
		t.Fatal(err)
	}
	if err := s.RetryMessage(ctx, ms[2].ID, now.Add(2*time.Minute), "smtp down"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, ms[3].ID, "bad address"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(ctx, "msg-none", "x"); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("DeadLetter of an unknown message: %v, want ErrNotFound", err)
	}
	later, _ := s.ClaimMessages(ctx, p.ID, "emails", 10, now.Add(5*time.Minute), time.Minute)
	if len(later) != 2 || later[0].ID != ms[2].ID || later[0].LastError != "smtp down" || later[0].Attempts != 3 {
		t.Errorf("claim after retry = %+v, want the retried message (attempt 3) and the fifth", later)
	}
	dead, _ := s.ListMessages(ctx, p.ID, "emails", control.MessageDead, 0)
	if len(dead) != 1 || dead[0].ID != ms[3].ID || dead[0].LastError != "bad address" {
		t.Errorf("dead letters = %+v", dead)
	}
	if other, _ := s.ClaimMessages(ctx, p.ID, "other", 10, now, time.Minute); len(other) != 2 {
		t.Errorf("other queue = %d messages, want 2", len(other))
	}

	// Concurrent claimers: every message exactly once.
	many := send("load", 40, 0)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				got, err := s.ClaimMessages(ctx, p.ID, "load", 3, time.Now(), time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, m := range many {
		if seen[m.ID] != 1 {
			t.Errorf("message %s claimed %d times by concurrent claimers", m.ID, seen[m.ID])
		}
	}
	if err := s.SendMessages(ctx, []*control.Message{{ProjectID: "prj-none", Queue: "q", Body: json.RawMessage(`1`)}}); !errors.Is(err, control.ErrNotFound) {
		t.Errorf("send for an unknown project: %v, want ErrNotFound", err)
	}
}
