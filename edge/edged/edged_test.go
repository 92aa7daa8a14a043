package edged_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/blob/dirblob"
	"github.com/pierhq/pier/edge/cache"
	"github.com/pierhq/pier/edge/cache/cachetest"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/coord/coordtest"
	"github.com/pierhq/pier/edge/coord/raftkv"
	"github.com/pierhq/pier/edge/edged"
)

var _ cache.Source = (*dirblob.Store)(nil)

// patience bounds every wait below: a liveness bound, not a performance
// assertion.
const patience = 20 * time.Second

// stack is the real embedded backends: raftkv under coord, and dirblob.
type stack struct {
	coord *coord.Coordinator
	blobs *dirblob.Store
}

func newStack(t *testing.T) *stack {
	t.Helper()
	kv, err := raftkv.Open(raftkv.Config{Dir: t.TempDir(), MinSessionTTL: coordtest.SessionTTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kv.Close(); err != nil {
			t.Errorf("close raftkv: %v", err)
		}
	})
	blobs, err := dirblob.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	c := coord.New(coord.Config{
		SessionTTL:   coordtest.SessionTTL,
		PollInterval: 20 * time.Millisecond,
		ReadyTimeout: patience,
		Logger:       coordtest.Logger(t),
	}, kv)
	return &stack{coord: c, blobs: blobs}
}

type edgeProc struct {
	*edged.Server
	id string
}

// startEdge runs an edge until the test ends; Run must return nil.
func startEdge(t *testing.T, id string, c edged.Coordinator, src cache.Source, tweak func(*edged.Config)) *edgeProc {
	t.Helper()
	cfg := edged.Config{
		ID:         id,
		Addr:       "127.0.0.1:0",
		BaseDomain: "localhost",
		CacheDir:   t.TempDir(),
		Logger:     coordtest.Logger(t),
		RetryMin:   10 * time.Millisecond,
		RetryMax:   100 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := edged.New(cfg, edged.Deps{Coord: c, Blobs: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("edge %s: Run = %v", id, err)
			}
		case <-time.After(patience):
			t.Errorf("edge %s: Run did not return", id)
		}
	})
	eventually(t, "edge listening", func() bool { return s.Addr() != "" })
	return &edgeProc{Server: s, id: id}
}

func waitReady(t *testing.T, e *edgeProc) {
	t.Helper()
	select {
	case <-e.Ready():
	case <-time.After(patience):
		t.Fatalf("edge %s never became ready", e.id)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, e *edgeProc, host, path string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.Addr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{res.StatusCode, res.Header, string(b)}
}

// serving waits until host/path on e answers body (the switch is
// asynchronous: the edge learns of a pointer through its watch).
func serving(t *testing.T, e *edgeProc, host, path, body string) reply {
	t.Helper()
	var last reply
	eventually(t, host+path+" to serve "+body, func() bool {
		last = get(t, e, host, path)
		return last.status == 200 && last.body == body
	})
	return last
}

func health(t *testing.T, e *edgeProc) (int, map[string]any) {
	t.Helper()
	r := get(t, e, "127.0.0.1", "/healthz")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("healthz body %q: %v", r.body, err)
	}
	return r.status, v
}

func promote(t *testing.T, c *coord.Coordinator, m *edge.Manifest) *coord.Cutover {
	t.Helper()
	cut, err := c.Promote(t.Context(), coord.PromoteRequest{
		ProjectID: m.ProjectID, ProjectName: m.ProjectName, Environment: "production", DeploymentID: m.DeploymentID,
	})
	if err != nil {
		t.Fatalf("promote %s: %v", m.DeploymentID, err)
	}
	return cut
}

func deployment(id, project, projectID, version string, created time.Time) cachetest.Deployment {
	return cachetest.Deployment{
		ID: id, ProjectID: projectID, ProjectName: project, CreatedAt: created,
		Files: map[string]cachetest.File{
			"index.html": {Body: "home " + version, Compress: true},
			"about.html": {Body: "about " + version},
			"assets/index-" + version + "9f8e7d6c.js": {Body: "js " + version},
			"only-" + version + ".txt":                {Body: "plain " + version},
		},
	}
}

// TestSpinUpSyncServe walks the edge's life on the real embedded backends:
// not ready while it cannot hold the live deployment, then promote,
// switch, skew protection, rollback, deployment-id hosts, unknown hosts
// and a clean leave.
func TestSpinUpSyncServe(t *testing.T) {
	st := newStack(t)
	ctx := t.Context()
	t0 := time.Now().UTC()

	// A is live before the edge starts, but its files are not in the
	// object store yet: the edge must listen, answer 503 and wait.
	depA := deployment("dpl-aaaa", "app", "prj-app", "va", t0)
	mA, _ := cachetest.Build(depA)
	promote(t, st.coord, mA) // no edges yet: the pointer is written at once

	e := startEdge(t, "edge-1", st.coord, st.blobs, nil)
	t.Run("healthz before ready", func(t *testing.T) {
		code, body := health(t, e)
		if code != http.StatusServiceUnavailable || body["status"] != "starting" || body["edge"] != "edge-1" {
			t.Fatalf("healthz = %d %v, want 503 starting", code, body)
		}
		if r := get(t, e, "app.localhost", "/"); r.status != http.StatusServiceUnavailable {
			t.Fatalf("site before ready = %d, want 503", r.status)
		}
		select {
		case <-e.Ready():
			t.Fatal("ready without the live deployment")
		default:
		}
	})

	cachetest.Publish(t, st.blobs, depA)
	waitReady(t, e)

	t.Run("healthz after ready", func(t *testing.T) {
		code, body := health(t, e)
		if code != http.StatusOK || body["status"] != "ok" || body["edge"] != "edge-1" || body["deployments"] != 1.0 {
			t.Fatalf("healthz = %d %v, want 200 ok with 1 deployment", code, body)
		}
		edges, err := st.coord.Edges(ctx)
		if err != nil || len(edges) != 1 || edges[0].ID != "edge-1" || edges[0].Addr != e.Addr() {
			t.Fatalf("edges = %+v, %v; want edge-1 at %s", edges, err, e.Addr())
		}
		ready, err := st.coord.ReadyEdges(ctx, "dpl-aaaa")
		if err != nil || len(ready) != 1 {
			t.Fatalf("ready edges of A = %v, %v", ready, err)
		}
	})

	t.Run("serve A", func(t *testing.T) {
		r := get(t, e, "App.LocalHost:8080", "/about")
		if r.status != 200 || r.body != "about va" {
			t.Fatalf("GET /about = %d %q", r.status, r.body)
		}
		if r.header.Get("X-Pier-Deployment") != "dpl-aaaa" || r.header.Get("X-Pier-Edge") != "edge-1" {
			t.Fatalf("headers = %v", r.header)
		}
	})

	// B: published, promoted; Promote waits for this edge's readiness.
	mB := cachetest.Publish(t, st.blobs, deployment("dpl-bbbb", "app", "prj-app", "vb", t0.Add(time.Minute)))
	t.Run("promote B", func(t *testing.T) {
		cut := promote(t, st.coord, mB)
		if len(cut.Edges) != 1 || cut.Edges[0].EdgeID != "edge-1" || cut.Previous != "dpl-aaaa" {
			t.Fatalf("cutover = %+v, want edge-1 ready, previous A", cut)
		}
		r := serving(t, e, "app.localhost", "/", "home vb")
		if r.header.Get("X-Pier-Deployment") != "dpl-bbbb" {
			t.Fatalf("X-Pier-Deployment = %q", r.header.Get("X-Pier-Deployment"))
		}
	})

	t.Run("skew protection", func(t *testing.T) {
		r := get(t, e, "app.localhost", "/assets/index-va9f8e7d6c.js")
		if r.status != 200 || r.body != "js va" || r.header.Get("X-Pier-Deployment") != "dpl-aaaa" {
			t.Fatalf("old hashed asset = %d %q from %q, want A's", r.status, r.body, r.header.Get("X-Pier-Deployment"))
		}
		if r := get(t, e, "app.localhost", "/assets/index-vb9f8e7d6c.js"); r.status != 200 || r.body != "js vb" {
			t.Fatalf("new hashed asset = %d %q", r.status, r.body)
		}
		// Only hashed assets fall back: A's other files are gone from the site.
		if r := get(t, e, "app.localhost", "/only-va.txt"); r.status != 404 {
			t.Fatalf("old unhashed file = %d %q, want 404", r.status, r.body)
		}
		if r := get(t, e, "app.localhost", "/assets/index-zz9f8e7d6c.js"); r.status != 404 {
			t.Fatalf("unknown hashed asset = %d, want 404", r.status)
		}
	})

	t.Run("rollback to A", func(t *testing.T) {
		promote(t, st.coord, mA)
		serving(t, e, "app.localhost", "/", "home va")
		if r := get(t, e, "app.localhost", "/assets/index-vb9f8e7d6c.js"); r.status != 200 || r.header.Get("X-Pier-Deployment") != "dpl-bbbb" {
			t.Fatalf("B's asset after rollback = %d from %q, want B's", r.status, r.header.Get("X-Pier-Deployment"))
		}
	})

	t.Run("deployment-id hosts", func(t *testing.T) {
		// Held ones.
		if r := get(t, e, "dpl-bbbb.app.localhost", "/"); r.status != 200 || r.body != "home vb" || r.header.Get("X-Pier-Deployment") != "dpl-bbbb" {
			t.Fatalf("B by id = %d %q", r.status, r.body)
		}
		// Never announced: synced on first request.
		cachetest.Publish(t, st.blobs, deployment("dpl-cccc", "app", "prj-app", "vc", t0.Add(2*time.Minute)))
		if r := get(t, e, "dpl-cccc.app.localhost", "/about"); r.status != 200 || r.body != "about vc" {
			t.Fatalf("lazy C = %d %q", r.status, r.body)
		}
		if r := get(t, e, "dpl-cccc.app.localhost", "/"); r.status != 200 || r.body != "home vc" {
			t.Fatalf("lazy C again = %d %q", r.status, r.body)
		}
		// Another project's deployment is not reachable under this project.
		cachetest.Publish(t, st.blobs, deployment("dpl-dddd", "other", "prj-other", "vd", t0))
		for _, host := range []string{"dpl-dddd.app.localhost", "dpl-aaaa.other.localhost", "dpl-nope.app.localhost", "dpl-cccc.nope.localhost"} {
			if r := get(t, e, host, "/"); r.status != 404 || !strings.Contains(r.body, "no such deployment") {
				t.Errorf("%s = %d %q, want 404 no such deployment", host, r.status, r.body)
			}
		}
		if r := get(t, e, "dpl-dddd.other.localhost", "/"); r.status != 200 || r.body != "home vd" {
			t.Errorf("D under its own project = %d %q", r.status, r.body)
		}
		// The flat form, one label deep: <id>--<project>.<base>.
		if r := get(t, e, "dpl-cccc--app.localhost", "/about"); r.status != 200 || r.body != "about vc" {
			t.Errorf("C flat = %d %q", r.status, r.body)
		}
		if r := get(t, e, "DPL-DDDD--other.localhost", "/"); r.status != 200 || r.body != "home vd" {
			t.Errorf("D flat = %d %q", r.status, r.body)
		}
		for _, host := range []string{"dpl-dddd--app.localhost", "dpl-nope--app.localhost", "dpl-cccc--nope.localhost"} {
			if r := get(t, e, host, "/"); r.status != 404 || !strings.Contains(r.body, "no such deployment") {
				t.Errorf("%s = %d %q, want 404 no such deployment", host, r.status, r.body)
			}
		}
	})

	t.Run("unknown hosts", func(t *testing.T) {
		for _, host := range []string{"nope.localhost", "127.0.0.1", "localhost", "example.com", "a.b.app.localhost", "a..localhost",
			"--app.localhost", "dpl-cccc--.localhost"} {
			r := get(t, e, host, "/")
			if r.status != 404 || r.header.Get("Content-Type") != "application/json" || r.header.Get("X-Pier-Edge") != "edge-1" {
				t.Errorf("%s = %d %v %q, want JSON 404", host, r.status, r.header, r.body)
			}
		}
		if r := get(t, e, "nope.localhost", "/"); !strings.Contains(r.body, "no such project") {
			t.Errorf("unknown host body = %q", r.body)
		}
		// /healthz belongs to sites on their own hosts.
		if r := get(t, e, "app.localhost", "/healthz"); r.status != 404 || r.header.Get("X-Pier-Deployment") != "dpl-aaaa" {
			t.Errorf("site /healthz = %d %q, want the site's 404", r.status, r.body)
		}
	})

	t.Run("health counts deployments", func(t *testing.T) {
		if _, body := health(t, e); body["deployments"].(float64) < 3 {
			t.Fatalf("healthz = %v, want A, B and C held", body)
		}
	})
}

// TestLeaveOnShutdown: a stopped edge leaves the pool at once.
func TestLeaveOnShutdown(t *testing.T) {
	st := newStack(t)
	s, err := edged.New(edged.Config{ID: "edge-x", Addr: "127.0.0.1:0", CacheDir: t.TempDir()},
		edged.Deps{Coord: st.coord, Blobs: st.blobs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready(): // nothing is live: ready as soon as it has joined
	case <-time.After(patience):
		t.Fatal("not ready")
	}
	if edges, err := st.coord.Edges(t.Context()); err != nil || len(edges) != 1 {
		t.Fatalf("edges = %v, %v", edges, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if edges, err := st.coord.Edges(t.Context()); err != nil || len(edges) != 0 {
		t.Fatalf("edges after shutdown = %v, %v; want none", edges, err)
	}
}

// TestEviction: only KeepPrevious formerly active deployments stay cached;
// evicted ones are synced again on a rollback to them.
func TestEviction(t *testing.T) {
	st := newStack(t)
	e := startEdge(t, "edge-1", st.coord, st.blobs, func(c *edged.Config) { c.KeepPrevious = 1 })
	waitReady(t, e)
	t0 := time.Now().UTC()
	var ms []*edge.Manifest
	for i, v := range []string{"v1", "v2", "v3"} {
		m := cachetest.Publish(t, st.blobs, deployment("dpl-"+v, "app", "prj-app", v, t0.Add(time.Duration(i)*time.Minute)))
		ms = append(ms, m)
		// Promote announces; retract the announcement once live so only
		// the pointer history keeps old deployments.
		promote(t, st.coord, m)
		serving(t, e, "app.localhost", "/", "home "+v)
		if err := st.coord.Retract(t.Context(), m.DeploymentID); err != nil {
			t.Fatal(err)
		}
	}
	// v3 live, v2 kept (KeepPrevious 1), v1 evicted.
	eventually(t, "v1 evicted", func() bool {
		return get(t, e, "app.localhost", "/assets/index-v19f8e7d6c.js").status == 404
	})
	if r := get(t, e, "app.localhost", "/assets/index-v29f8e7d6c.js"); r.status != 200 {
		t.Errorf("v2 asset (kept) = %d", r.status)
	}
	if _, body := health(t, e); body["deployments"] != 2.0 {
		t.Errorf("healthz = %v, want 2 deployments held", body)
	}
	// Rolling back to v1 waits for the edge to hold it again.
	promote(t, st.coord, ms[0])
	serving(t, e, "app.localhost", "/", "home v1")
}

// gate is a cache.Source over the real store that fails one key until
// opened: an edge that cannot get a deployment.
type gate struct {
	cache.Source
	mu     sync.Mutex
	closed map[string]bool
}

func (g *gate) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	g.mu.Lock()
	shut := g.closed[key]
	g.mu.Unlock()
	if shut {
		return nil, errors.New("object store unreachable")
	}
	return g.Source.Get(ctx, key)
}

func (g *gate) open(key string) {
	g.mu.Lock()
	delete(g.closed, key)
	g.mu.Unlock()
}

// TestDrainedEdgeRejoins: two edges in one process; one cannot fetch the
// new deployment, is drained by the cutover, resyncs and rejoins.
func TestDrainedEdgeRejoins(t *testing.T) {
	st := newStack(t)
	mA := cachetest.Publish(t, st.blobs, deployment("dpl-aaaa", "app", "prj-app", "va", time.Now()))
	promote(t, st.coord, mA)

	g := &gate{Source: st.blobs, closed: map[string]bool{edge.ManifestKey("dpl-bbbb"): true}}
	e1 := startEdge(t, "edge-1", st.coord, st.blobs, nil)
	e2 := startEdge(t, "edge-2", st.coord, g, nil)
	waitReady(t, e1)
	waitReady(t, e2)
	serving(t, e2, "app.localhost", "/", "home va")

	mB := cachetest.Publish(t, st.blobs, deployment("dpl-bbbb", "app", "prj-app", "vb", time.Now()))
	cut, err := st.coord.Promote(t.Context(), coord.PromoteRequest{
		ProjectID: "prj-app", ProjectName: "app", Environment: "production", DeploymentID: mB.DeploymentID,
		ReadyTimeout: 500 * time.Millisecond, DrainNotReady: true,
	})
	if err != nil {
		t.Fatalf("promote with drain: %v", err)
	}
	if len(cut.Edges) != 1 || cut.Edges[0].EdgeID != "edge-1" {
		t.Fatalf("cutover edges = %+v, want only edge-1", cut.Edges)
	}
	serving(t, e1, "app.localhost", "/", "home vb")
	// edge-2 keeps serving what it holds rather than failing.
	if r := get(t, e2, "app.localhost", "/"); r.status != 200 || r.body != "home va" {
		t.Fatalf("drained edge = %d %q, want A still served", r.status, r.body)
	}

	g.open(edge.ManifestKey("dpl-bbbb"))
	serving(t, e2, "app.localhost", "/", "home vb")
	eventually(t, "edge-2 back in the pool", func() bool {
		edges, err := st.coord.Edges(t.Context())
		return err == nil && len(edges) == 2
	})
}

func TestNewValidates(t *testing.T) {
	st := newStack(t)
	deps := edged.Deps{Coord: st.coord, Blobs: st.blobs}
	tests := []struct {
		name string
		cfg  edged.Config
	}{
		{"no id", edged.Config{CacheDir: t.TempDir()}},
		{"no cache dir", edged.Config{ID: "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := edged.New(tt.cfg, deps); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

// stall is a cache.Source over the real store whose Gets of one key block
// until released (or their context ends): a sync that takes forever.
type stall struct {
	cache.Source
	key     string
	release chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (s *stall) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if key == s.key {
		s.once.Do(func() { close(s.entered) })
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Source.Get(ctx, key)
}

// TestRollbackDoesNotWaitForSync: a pointer switch to a deployment the
// edge holds takes effect while another deployment is still syncing.
func TestRollbackDoesNotWaitForSync(t *testing.T) {
	st := newStack(t)
	t0 := time.Now()
	q1 := cachetest.Publish(t, st.blobs, deployment("dpl-q1", "blog", "prj-blog", "q1", t0))
	q2 := cachetest.Publish(t, st.blobs, deployment("dpl-q2", "blog", "prj-blog", "q2", t0.Add(time.Minute)))
	x := cachetest.Publish(t, st.blobs, deployment("dpl-x", "app", "prj-app", "x", t0))
	src := &stall{Source: st.blobs, key: edge.ManifestKey(x.DeploymentID), release: make(chan struct{}), entered: make(chan struct{})}

	e := startEdge(t, "edge-1", st.coord, src, nil)
	waitReady(t, e)
	promote(t, st.coord, q1)
	promote(t, st.coord, q2)
	serving(t, e, "blog.localhost", "/", "home q2")

	// X starts syncing and hangs.
	if err := st.coord.Announce(t.Context(), coord.Announcement{DeploymentID: x.DeploymentID, ProjectID: x.ProjectID, ProjectName: x.ProjectName}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.entered:
	case <-time.After(patience):
		t.Fatal("the edge never started syncing X")
	}

	promote(t, st.coord, q1) // rollback: q1 is held and marked ready
	serving(t, e, "blog.localhost", "/", "home q1")
	readyOnX := func() int {
		ids, err := st.coord.ReadyEdges(t.Context(), x.DeploymentID)
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	if n := readyOnX(); n != 0 {
		t.Fatalf("X ready on %d edges while its sync hangs", n)
	}

	close(src.release)
	eventually(t, "X ready once released", func() bool { return readyOnX() == 1 })
}
