package raftkv

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pierhq/pier/edge/coord"
)

// Operations carried by raft log entries. Every mutation of the store is
// one of these, so replaying the log rebuilds the same state.
const (
	opPut            = "put"
	opCAS            = "cas"
	opDelete         = "delete"
	opAcquire        = "acquire"
	opRelease        = "release"
	opCreateSession  = "session-create"
	opDestroySession = "session-destroy"
	opExpireSession  = "session-expire" // applied by the leader when a TTL lapses
)

// maxTombstones bounds the deleted-key index kept for blocking queries.
// When it is exceeded the oldest half is dropped and reapedIndex remembers
// the newest dropped index: a blocking List whose waitIndex is below it
// returns at once (a spurious wake-up, which callers must tolerate anyway).
const maxTombstones = 4096

// command is one raft log entry, JSON-encoded.
type command struct {
	Op       string         `json:"op"`
	Key      string         `json:"key,omitempty"`
	Value    []byte         `json:"value,omitempty"`
	Index    uint64         `json:"index,omitempty"`
	Session  string         `json:"session,omitempty"`
	Name     string         `json:"name,omitempty"`
	TTL      time.Duration  `json:"ttl,omitempty"`
	Behavior coord.Behavior `json:"behavior,omitempty"`
}

// result is what FSM.Apply returns through the ApplyFuture.
type result struct {
	ok  bool
	err error
}

type entry struct {
	Value       []byte `json:"value,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
	LockIndex   uint64 `json:"lock_index,omitempty"`
	Session     string `json:"session,omitempty"`
}

type session struct {
	Name        string         `json:"name,omitempty"`
	TTL         time.Duration  `json:"ttl"`
	Behavior    coord.Behavior `json:"behavior"`
	CreateIndex uint64         `json:"create_index"`
}

// state is the replicated state, and the snapshot format.
type state struct {
	Index       uint64              `json:"index"` // last applied command's raft index
	Keys        map[string]*entry   `json:"keys"`
	Sessions    map[string]*session `json:"sessions"`
	Tombstones  map[string]uint64   `json:"tombstones"` // deleted key -> index of the delete
	ReapedIndex uint64              `json:"reaped_index,omitempty"`
}

func newState() *state {
	return &state{
		Keys:       make(map[string]*entry),
		Sessions:   make(map[string]*session),
		Tombstones: make(map[string]uint64),
	}
}

// fsm is the raft state machine. Reads take mu.RLock; Apply and Restore
// take mu.Lock and close the changed channel to wake blocking queries.
type fsm struct {
	mu      sync.RWMutex
	st      *state
	changed chan struct{}
}

var _ raft.FSM = (*fsm)(nil)

func newFSM() *fsm {
	return &fsm{st: newState(), changed: make(chan struct{})}
}

// notifyLocked wakes every blocking query. Callers hold mu.
func (f *fsm) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		// A malformed entry can only come from a bug; skipping it keeps
		// every replay identical.
		return result{err: fmt.Errorf("decode raft entry %d: %w", l.Index, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := f.st.apply(l.Index, &c)
	if l.Index > f.st.Index {
		f.st.Index = l.Index
	}
	f.notifyLocked()
	return res
}

func (s *state) apply(idx uint64, c *command) result {
	switch c.Op {
	case opPut:
		s.set(idx, c.Key, c.Value)
		return result{ok: true}
	case opCAS:
		e := s.Keys[c.Key]
		if (c.Index == 0 && e != nil) || (c.Index != 0 && (e == nil || e.ModifyIndex != c.Index)) {
			return result{ok: false}
		}
		s.set(idx, c.Key, c.Value)
		return result{ok: true}
	case opDelete:
		s.delete(idx, c.Key)
		return result{ok: true}
	case opAcquire:
		if _, live := s.Sessions[c.Session]; !live {
			return result{err: coord.ErrSessionInvalid}
		}
		e := s.Keys[c.Key]
		if e != nil && e.Session != "" && e.Session != c.Session {
			return result{ok: false}
		}
		e = s.set(idx, c.Key, c.Value)
		if e.Session != c.Session {
			e.Session = c.Session
			e.LockIndex++
		}
		return result{ok: true}
	case opRelease:
		e := s.Keys[c.Key]
		if e == nil || e.Session == "" || e.Session != c.Session {
			return result{ok: false}
		}
		e.Session = ""
		e.ModifyIndex = idx
		return result{ok: true}
	case opCreateSession:
		if _, dup := s.Sessions[c.Session]; dup {
			return result{err: fmt.Errorf("session %s already exists", c.Session)}
		}
		s.Sessions[c.Session] = &session{Name: c.Name, TTL: c.TTL, Behavior: c.Behavior, CreateIndex: idx}
		return result{ok: true}
	case opDestroySession, opExpireSession:
		sess, live := s.Sessions[c.Session]
		if !live {
			return result{ok: false}
		}
		delete(s.Sessions, c.Session)
		for key, e := range s.Keys {
			if e.Session != c.Session {
				continue
			}
			if sess.Behavior == coord.BehaviorDelete {
				s.delete(idx, key)
			} else {
				e.Session = ""
				e.ModifyIndex = idx
			}
		}
		return result{ok: true}
	default:
		return result{err: fmt.Errorf("unknown raft op %q", c.Op)}
	}
}

// set writes key at idx and returns its entry; a held lock stays held
// (as in Consul, a plain write does not release it).
func (s *state) set(idx uint64, key string, value []byte) *entry {
	e := s.Keys[key]
	if e == nil {
		e = &entry{CreateIndex: idx}
		s.Keys[key] = e
		delete(s.Tombstones, key)
	}
	e.Value = append([]byte(nil), value...)
	e.ModifyIndex = idx
	return e
}

func (s *state) delete(idx uint64, key string) {
	if _, ok := s.Keys[key]; !ok {
		return
	}
	delete(s.Keys, key)
	s.Tombstones[key] = idx
	if len(s.Tombstones) <= maxTombstones {
		return
	}
	type tomb struct {
		key string
		idx uint64
	}
	all := make([]tomb, 0, len(s.Tombstones))
	for k, i := range s.Tombstones {
		all = append(all, tomb{k, i})
	}
	sort.Slice(all, func(a, b int) bool {
		if all[a].idx != all[b].idx {
			return all[a].idx < all[b].idx
		}
		return all[a].key < all[b].key
	})
	for _, t := range all[:len(all)/2] {
		delete(s.Tombstones, t.key)
		if t.idx > s.ReapedIndex {
			s.ReapedIndex = t.idx
		}
	}
}

func (e *entry) pair(key string) *coord.Pair {
	return &coord.Pair{
		Key:         key,
		Value:       append([]byte(nil), e.Value...),
		CreateIndex: e.CreateIndex,
		ModifyIndex: e.ModifyIndex,
		LockIndex:   e.LockIndex,
		Session:     e.Session,
	}
}

func (f *fsm) get(key string) (*coord.Pair, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.st.Keys[key]
	if !ok {
		return nil, false
	}
	return e.pair(key), true
}

// list returns the pairs under prefix (sorted by key), the store index, the
// highest index at which anything under prefix changed after waitIndex
// (0 if nothing did), and the channel closed on the next change.
func (f *fsm) list(prefix string, waitIndex uint64) ([]*coord.Pair, uint64, bool, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var pairs []*coord.Pair
	changed := f.st.ReapedIndex > waitIndex
	for key, e := range f.st.Keys {
		if strings.HasPrefix(key, prefix) {
			pairs = append(pairs, e.pair(key))
			if e.ModifyIndex > waitIndex {
				changed = true
			}
		}
	}
	if !changed {
		for key, idx := range f.st.Tombstones {
			if idx > waitIndex && strings.HasPrefix(key, prefix) {
				changed = true
				break
			}
		}
	}
	sort.Slice(pairs, func(a, b int) bool { return pairs[a].Key < pairs[b].Key })
	return pairs, f.st.Index, changed, f.changed
}

// sessionTTL reports whether the session is live, and its TTL.
func (f *fsm) sessionTTL(id string) (time.Duration, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.st.Sessions[id]
	if !ok {
		return 0, false
	}
	return s.TTL, true
}

// sessionTTLs returns every live session's TTL.
func (f *fsm) sessionTTLs() map[string]time.Duration {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]time.Duration, len(f.st.Sessions))
	for id, s := range f.st.Sessions {
		out[id] = s.TTL
	}
	return out
}

// Snapshot implements raft.FSM: it encodes the state now (small, and Apply
// is paused meanwhile) so Persist needs no lock.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	data, err := json.Marshal(f.st)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	return snapshot(data), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := newState()
	if err := json.NewDecoder(rc).Decode(st); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	if st.Keys == nil {
		st.Keys = make(map[string]*entry)
	}
	if st.Sessions == nil {
		st.Sessions = make(map[string]*session)
	}
	if st.Tombstones == nil {
		st.Tombstones = make(map[string]uint64)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	f.notifyLocked()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s snapshot) Release() {}
