package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// The fault tests of the all-edges-ready cutover: three edges as separate
// processes on the production adapters (Consul, MinIO, PostgreSQL, Vault,
// Nomad), and in every case each edge serves either the complete old or
// the complete new deployment, checked by fetching every file from every
// edge.

const siteFiles = 40

// site is one version of a test site: every file names its version.
func site(version string) map[string]string {
	files := map[string]string{"index.html": "<h1>" + version + "</h1>"}
	for i := range siteFiles {
		files[fmt.Sprintf("assets/part-%02d.%s0a1b2c3d.js", i, strings.ReplaceAll(version, "-", ""))] = version
		files[fmt.Sprintf("pages/p%02d.html", i)] = version + fmt.Sprintf(" page %d", i)
	}
	return files
}

// pageVersions fetches index.html and every page from e and returns the
// version each carried ("" when the edge answered no version).
func pageVersions(t *testing.T, e *prodEdge) []string {
	t.Helper()
	var out []string
	_, body, _ := edgeGet(t, e.addr, "www.pier.test", "/")
	out = append(out, strings.TrimSuffix(strings.TrimPrefix(body, "<h1>"), "</h1>"))
	for i := range siteFiles {
		code, body, _ := edgeGet(t, e.addr, "www.pier.test", fmt.Sprintf("/pages/p%02d.html", i))
		if code != 200 {
			out = append(out, "")
			continue
		}
		v, _, _ := strings.Cut(body, " page ")
		out = append(out, v)
	}
	return out
}

// consistent checks that every edge serves one whole version, one of
// allowed, and returns it per edge.
func consistent(t *testing.T, edges []*prodEdge, allowed ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, e := range edges {
		vs := pageVersions(t, e)
		v := vs[0]
		for _, w := range vs {
			if w != v {
				t.Fatalf("%s serves a mix of deployments: %v", e.id, vs)
			}
		}
		ok := false
		for _, a := range allowed {
			ok = ok || v == a
		}
		if !ok {
			t.Fatalf("%s serves %q, want one of %v", e.id, v, allowed)
		}
		got[e.id] = v
	}
	return got
}

func waitAll(t *testing.T, edges []*prodEdge, version string, within time.Duration) {
	t.Helper()
	for _, e := range edges {
		testenv.WaitFor(t, within, e.id+" serving "+version, func() bool {
			_, body, _ := edgeGet(t, e.addr, "www.pier.test", "/")
			return body == "<h1>"+version+"</h1>"
		})
	}
	consistent(t, edges, version)
}

func (st *prodStack) active(t *testing.T) string {
	var p project
	st.call(t, "GET", "/v1/projects/www", nil, &p)
	return p.ActiveDeployment
}

func setupSite(t *testing.T, opts prodOptions) (*prodStack, *testenv.Git, deployment) {
	t.Helper()
	st := startProd(t, opts)
	git := testenv.GitServer(t, gitToken)
	url, sha := git.CreateRepo(t, "www", site("v1"))
	if code := st.call(t, "POST", "/v1/projects", map[string]any{"name": "www", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	d := st.deploy(t, "www", sha)
	if d.State != "ready" {
		t.Fatalf("v1: %s (%s)\n%s", d.State, d.Error, st.log(t, d.ID))
	}
	waitAll(t, st.edges, "v1", 30*time.Second)
	return st, git, d
}

// An edge that cannot reach storage cannot confirm: the cutover fails at
// its deadline and the old deployment stays live everywhere. Once the
// edge can reach storage again, the same deployment goes live everywhere.
func TestFaultEdgeCannotReachStorage(t *testing.T) {
	st, git, d1 := setupSite(t, prodOptions{edges: 3, readyTimeout: "8s"})
	st.edges[2].proxy.Cut()

	git.Commit(t, "www", site("v2"))
	d2 := st.deploy(t, "www", "main")
	if d2.State != "ready" {
		t.Fatalf("v2 build: %s (%s)", d2.State, d2.Error)
	}
	testenv.WaitFor(t, time.Minute, "the failed cutover to be logged", func() bool {
		return strings.Contains(st.log(t, d2.ID), "not promoted")
	})
	if log := st.log(t, d2.ID); !strings.Contains(log, "edge-c") {
		t.Errorf("the log does not name the edge that was not ready:\n%s", log)
	}
	if a := st.active(t); a != d1.ID {
		t.Fatalf("active = %s after a failed cutover, want %s", a, d1.ID)
	}
	consistent(t, st.edges, "v1")

	var e apiError
	if code := st.call(t, "POST", "/v1/deployments/"+d2.ID+"/promote", nil, &e); code != 409 {
		t.Errorf("promote with edge-c cut off = %d %+v, want 409", code, e)
	}
	consistent(t, st.edges, "v1")

	st.edges[2].proxy.Restore()
	if code := st.call(t, "POST", "/v1/deployments/"+d2.ID+"/promote", nil, nil); code != 200 {
		t.Fatalf("promote after restore = %d", code)
	}
	waitAll(t, st.edges, "v2", 30*time.Second)
}

// An edge killed while it syncs: the cutover either completes (the edge
// had confirmed, or its membership expired) or fails; either way every
// live edge serves one whole deployment, and the restarted edge syncs the
// live one before it serves.
func TestFaultEdgeKilledMidSync(t *testing.T) {
	st, git, d1 := setupSite(t, prodOptions{edges: 3, readyTimeout: "45s"})
	git.Commit(t, "www", site("v2"))
	var d2 deployment
	if code := st.call(t, "POST", "/v1/projects/www/deployments", map[string]string{"ref": "main"}, &d2); code != 201 {
		t.Fatalf("deploy: %d", code)
	}
	victim := st.edges[2]
	testenv.WaitFor(t, 4*time.Minute, "v2 built", func() bool {
		st.call(t, "GET", "/v1/deployments/"+d2.ID, nil, &d2)
		return d2.State != "queued" && d2.State != "building"
	})
	victim.srv.Kill() // as the announcement reaches the edges
	if d2.State != "ready" {
		t.Fatalf("v2: %s (%s)", d2.State, d2.Error)
	}
	live := st.edges[:2]
	testenv.WaitFor(t, time.Minute, "the cutover to end", func() bool {
		log := st.log(t, d2.ID)
		return strings.Contains(log, "==> pier: live ") || strings.Contains(log, "not promoted")
	})
	want := "v1"
	if st.active(t) == d2.ID {
		want = "v2"
	} else if a := st.active(t); a != d1.ID {
		t.Fatalf("active = %s, want %s or %s", a, d1.ID, d2.ID)
	}
	t.Logf("with edge-c killed the cutover ended on %s", want)
	waitAll(t, live, want, 30*time.Second)

	st.startEdge(t, victim) // same data dir: a partial cache
	waitAll(t, st.edges, want, 30*time.Second)
	if want == "v1" {
		if code := st.call(t, "POST", "/v1/deployments/"+d2.ID+"/promote", nil, nil); code != 200 {
			t.Fatalf("promote = %d", code)
		}
		waitAll(t, st.edges, "v2", 30*time.Second)
	}
}

// Control killed while it holds the cutover lock and waits for an edge:
// nothing is half-done (the pointer never moved), the lock is released by
// its session's TTL, and a new control promotes normally.
func TestFaultControlKilledDuringCutover(t *testing.T) {
	st, git, d1 := setupSite(t, prodOptions{edges: 3, readyTimeout: "2m"})
	st.edges[2].proxy.Cut() // edge-c cannot confirm: control waits under the lock
	git.Commit(t, "www", site("v2"))
	var d2 deployment
	st.call(t, "POST", "/v1/projects/www/deployments", map[string]string{"ref": "main"}, &d2)
	testenv.WaitFor(t, 4*time.Minute, "v2 built", func() bool {
		st.call(t, "GET", "/v1/deployments/"+d2.ID, nil, &d2)
		return d2.State == "ready" || d2.State == "failed"
	})
	if d2.State != "ready" {
		t.Fatalf("v2: %s (%s)", d2.State, d2.Error)
	}
	time.Sleep(time.Second) // the promotion is now waiting for edge-c, holding the lock
	st.control.Kill()
	consistent(t, st.edges, "v1")

	st.edges[2].proxy.Restore()
	st.control = testenv.StartPier(t, "pier-control-2", st.api+"/healthz", st.env,
		"serve", "--config", st.cfgPath, "--roles", "control")
	if a := st.active(t); a != d1.ID {
		t.Fatalf("active = %s after control died mid-cutover, want %s", a, d1.ID)
	}
	consistent(t, st.edges, "v1")
	// The dead control's lock expires with its session (TTL 15s); the
	// promotion waits for it (lock wait 30s) and then goes through.
	if code := st.call(t, "POST", "/v1/deployments/"+d2.ID+"/promote", nil, nil); code != 200 {
		t.Fatalf("promote after restart = %d", code)
	}
	waitAll(t, st.edges, "v2", 30*time.Second)
}

// The Consul agent restarts while a cutover waits under its lock: the
// cutover completes or fails as a whole, the edges converge on whatever
// the pointer says, and nothing is served half old, half new.
func TestFaultConsulRestartDuringCutover(t *testing.T) {
	st, git, d1 := setupSite(t, prodOptions{edges: 3, readyTimeout: "30s"})
	st.edges[2].proxy.Cut() // the cutover waits for edge-c
	git.Commit(t, "www", site("v2"))
	var d2 deployment
	st.call(t, "POST", "/v1/projects/www/deployments", map[string]string{"ref": "main"}, &d2)
	testenv.WaitFor(t, 4*time.Minute, "v2 built", func() bool {
		st.call(t, "GET", "/v1/deployments/"+d2.ID, nil, &d2)
		return d2.State == "ready" || d2.State == "failed"
	})
	if d2.State != "ready" {
		t.Fatalf("v2: %s (%s)", d2.State, d2.Error)
	}
	time.Sleep(500 * time.Millisecond)
	testenv.Consul(t).Restart(t)
	st.edges[2].proxy.Restore()

	testenv.WaitFor(t, 2*time.Minute, "the cutover to end", func() bool {
		log := st.log(t, d2.ID)
		return strings.Contains(log, "==> pier: live ") || strings.Contains(log, "not promoted")
	})
	want := "v1"
	if a := st.active(t); a == d2.ID {
		want = "v2"
	} else if a != d1.ID {
		t.Fatalf("active = %q, want %s or %s", a, d1.ID, d2.ID)
	}
	t.Logf("across the Consul restart the cutover ended on %s", want)
	waitAll(t, st.edges, want, time.Minute)
	if want == "v1" {
		if code := st.call(t, "POST", "/v1/deployments/"+d2.ID+"/promote", nil, nil); code != 200 {
			t.Fatalf("promote after the restart = %d", code)
		}
		waitAll(t, st.edges, "v2", 30*time.Second)
	}
}
