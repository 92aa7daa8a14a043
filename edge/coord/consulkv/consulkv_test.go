package consulkv_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/consulkv"
	"github.com/pierhq/pier/edge/coord/coordtest"
	"github.com/pierhq/pier/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// patience bounds every "eventually": a liveness bound, not a timing
// assertion.
const patience = 30 * time.Second

func randomID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newStore returns a Store on the test agent confined to a key prefix of
// its own (tests share the agent and run in parallel), whose keys are
// deleted when t ends.
func newStore(t testing.TB, agent testenv.ConsulAgent) *consulkv.Store {
	t.Helper()
	s, err := consulkv.New(consulkv.Config{
		Address:   agent.Addr,
		KeyPrefix: "pier-test/" + randomID(t) + "/",
		Logger:    coordtest.Logger(t),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pairs, _, err := s.List(ctx, "", 0, 0)
		if err != nil {
			t.Logf("clean up keys: %v", err)
			return
		}
		for _, p := range pairs {
			if err := s.Delete(ctx, p.Key); err != nil {
				t.Logf("clean up keys: %v", err)
			}
		}
	})
	return s
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestConformance runs the whole KV and protocol suite on a real agent.
func TestConformance(t *testing.T) {
	t.Parallel()
	agent := testenv.Consul(t)
	coordtest.Run(t, func(t *testing.T) coord.KV { return newStore(t, agent) })
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  consulkv.Config
		ok   bool
	}{
		{"defaults", consulkv.Config{}, true},
		{"url address", consulkv.Config{Address: "https://127.0.0.1:8501", KeyPrefix: "a/"}, true},
		{"absolute prefix", consulkv.Config{KeyPrefix: "/a/"}, false},
		{"empty check id", consulkv.Config{SessionChecks: []string{""}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := consulkv.New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%+v): err = %v, want ok %v", tt.cfg, err, tt.ok)
			}
		})
	}
}

// TestUnreachable: errors from a dead address are plain errors, not the
// port's sentinels.
func TestUnreachable(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s, err := consulkv.New(consulkv.Config{Address: "127.0.0.1:" + strconv.Itoa(port)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(t.Context(), "k")
	if err == nil || errors.Is(err, coord.ErrNotFound) || errors.Is(err, coord.ErrSessionInvalid) {
		t.Fatalf("Get from a dead agent: err = %v", err)
	}
}

// healthz is an edge's /healthz whose answer the test switches.
type healthz struct {
	srv     *httptest.Server
	failing atomic.Bool
}

func newHealthz(t *testing.T) *healthz {
	h := &healthz{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.failing.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *healthz) edge(id string) consulkv.Edge {
	port, _ := strconv.Atoi(h.srv.URL[len("http://127.0.0.1:"):])
	return consulkv.Edge{
		ID:        id,
		Address:   "127.0.0.1",
		Port:      port,
		HealthURL: h.srv.URL + "/healthz",
		Interval:  time.Second, // Consul's minimum
		Tags:      []string{"test"},
	}
}

func register(t *testing.T, s *consulkv.Store, e consulkv.Edge) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	checkID, err := s.RegisterEdge(ctx, e)
	if err != nil {
		t.Fatalf("RegisterEdge: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.DeregisterEdge(ctx, e.ID); err != nil {
			t.Errorf("DeregisterEdge: %v", err)
		}
	})
	return checkID
}

func healthy(t *testing.T, s *consulkv.Store, id string) bool {
	t.Helper()
	ids, err := s.HealthyEdges(t.Context())
	if err != nil {
		t.Fatalf("HealthyEdges: %v", err)
	}
	return slices.Contains(ids, id)
}

func edgeIDs(t *testing.T, c *coord.Coordinator) []string {
	t.Helper()
	edges, err := c.Edges(t.Context())
	if err != nil {
		t.Fatalf("Edges: %v", err)
	}
	ids := []string{}
	for _, e := range edges {
		ids = append(ids, e.ID)
	}
	return ids
}

// TestEdgeHealth: an edge registered as pier-edge whose /healthz starts
// failing goes critical, and its check-bound membership session ends, so
// its membership key disappears and Membership.Lost fires; once healthy
// again it can rejoin.
func TestEdgeHealth(t *testing.T) {
	t.Parallel()
	agent := testenv.Consul(t)
	s := newStore(t, agent)
	h := newHealthz(t)
	id := "edge-" + randomID(t)
	checkID := register(t, s, h.edge(id))
	if checkID != consulkv.EdgeCheckID(id) {
		t.Fatalf("check id = %q, want %q", checkID, consulkv.EdgeCheckID(id))
	}
	if !healthy(t, s, id) {
		t.Fatal("registered edge is not among the healthy edges")
	}

	// The edge's coordinator binds its sessions to the edge's check; a
	// TTL of 3s renews every second, well within the session's life.
	c := coord.New(coord.Config{SessionTTL: 3 * time.Second, PollInterval: 50 * time.Millisecond, Logger: coordtest.Logger(t)},
		s.WithSessionChecks(checkID))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	m, err := c.Join(ctx, coord.EdgeInfo{ID: id, Addr: h.srv.Listener.Addr().String()})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if got := edgeIDs(t, c); !slices.Equal(got, []string{id}) {
		t.Fatalf("edges = %v, want [%s]", got, id)
	}

	h.failing.Store(true)
	eventually(t, "the edge is no longer healthy in Consul", func() bool { return !healthy(t, s, id) })
	eventually(t, "the membership key is deleted", func() bool { return len(edgeIDs(t, c)) == 0 })
	eventually(t, "the membership reports itself lost", func() bool { return isClosed(m.Lost()) })
	if err := m.Leave(t.Context()); err != nil {
		t.Fatalf("Leave after loss: %v", err)
	}

	// While the check is critical no check-bound session can be made.
	if _, err := s.WithSessionChecks(checkID).CreateSession(t.Context(), coord.SessionOptions{TTL: 3 * time.Second}); err == nil {
		t.Fatal("CreateSession bound to a critical check succeeded")
	}

	h.failing.Store(false)
	eventually(t, "the edge is healthy again", func() bool { return healthy(t, s, id) })
	m2, err := c.Join(ctx, coord.EdgeInfo{ID: id})
	if err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	if got := edgeIDs(t, c); !slices.Equal(got, []string{id}) {
		t.Fatalf("edges after rejoin = %v", got)
	}
	if err := m2.Leave(t.Context()); err != nil {
		t.Fatalf("Leave: %v", err)
	}
}

func TestRegisterEdgeErrors(t *testing.T) {
	t.Parallel()
	agent := testenv.Consul(t)
	s := newStore(t, agent)
	h := newHealthz(t)

	tests := []struct {
		name string
		edge consulkv.Edge
	}{
		{"empty id", consulkv.Edge{HealthURL: h.srv.URL}},
		{"no health url", consulkv.Edge{ID: "edge-x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.RegisterEdge(t.Context(), tt.edge); err == nil {
				t.Fatal("RegisterEdge succeeded")
			}
		})
	}

	t.Run("never passing", func(t *testing.T) {
		h.failing.Store(true)
		id := "edge-" + randomID(t)
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		if _, err := s.RegisterEdge(ctx, h.edge(id)); err == nil {
			t.Fatal("RegisterEdge of a failing edge succeeded")
		}
		// The failed registration was removed from the agent.
		resp, err := http.Get("http://" + agent.Addr + "/v1/agent/service/" + id)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("agent service %s: status %d, want 404", id, resp.StatusCode)
		}
	})

	t.Run("deregister unknown", func(t *testing.T) {
		if err := s.DeregisterEdge(t.Context(), "edge-"+randomID(t)); err != nil {
			t.Fatalf("DeregisterEdge of an unknown edge: %v", err)
		}
	})
}

// TestAgentRestart: the test agent keeps its state across Restart, and a
// blocking query in flight ends with an error rather than hanging. It is
// not parallel, so it runs before the parallel tests start.
func TestAgentRestart(t *testing.T) {
	agent := testenv.Consul(t)
	if agent.DataDir == "" {
		t.Skip("PIER_CONSUL_ADDR: cannot restart an external agent")
	}
	s := newStore(t, agent)
	ctx := t.Context()
	if err := s.Put(ctx, "r/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	sess, err := s.CreateSession(ctx, coord.SessionOptions{Name: "restart", TTL: time.Minute, Behavior: coord.BehaviorDelete})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Acquire(ctx, "r/held", []byte("h"), sess); err != nil || !ok {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	_, idx, err := s.List(ctx, "r/", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, _, err := s.List(context.WithoutCancel(ctx), "r/", idx, patience)
		blocked <- err
	}()

	start := time.Now()
	agent.Restart(t)
	t.Logf("restart took %s", time.Since(start).Round(time.Millisecond))

	select {
	case err := <-blocked:
		t.Logf("blocking query across the restart: %v", err)
	case <-time.After(patience):
		t.Fatal("a blocking query in flight did not end with the restart")
	}
	if p, err := s.Get(ctx, "r/a"); err != nil || string(p.Value) != "a" {
		t.Fatalf("key after restart: %+v, %v", p, err)
	}
	if p, err := s.Get(ctx, "r/held"); err != nil || p.Session != sess {
		t.Fatalf("held key after restart: %+v, %v", p, err)
	}
	if err := s.RenewSession(ctx, sess); err != nil {
		t.Fatalf("RenewSession after restart: %v", err)
	}
	if err := s.DestroySession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "r/held"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("held key after destroying its delete-session: err = %v", err)
	}
}
