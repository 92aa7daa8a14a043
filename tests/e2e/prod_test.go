package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pierhq/pier/tests/testenv"
)

// prodStack is Pier on its production adapters: PostgreSQL, MinIO (S3),
// Vault transit, Consul and Nomad, all real servers on 127.0.0.1, with
// control and each edge as a separate `pier serve` process.
type prodStack struct {
	cfgPath string
	env     []string
	api     string
	token   string
	pgDSN   string
	vault   testenv.VaultServer
	edges   []*prodEdge
	control *testenv.Server
}

type prodEdge struct {
	id    string
	addr  string
	srv   *testenv.Server
	proxy *testenv.Proxy // this edge's path to the object store, cuttable
	env   []string
}

type prodOptions struct {
	edges        int
	readyTimeout string // control.ready_timeout; "" = default
	// extra is appended to the config file; it may use {{api}} for
	// control's API URL.
	extra string
}

func startProd(t *testing.T, opts prodOptions) *prodStack {
	t.Helper()
	edges := opts.edges
	readyTimeout := opts.readyTimeout
	if readyTimeout == "" {
		readyTimeout = "60s"
	}
	pg := testenv.Postgres(t)
	s3 := testenv.MinIO(t)
	bucket := s3.NewBucket(t)
	vault := testenv.Vault(t)
	consul := testenv.Consul(t)
	nomad := testenv.Nomad(t)
	ports, err := testenv.FreePorts(1 + edges)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
data_dir  = %q
log_level = "debug"

control {
  listen        = "127.0.0.1:%d"
  base_domain   = "pier.test"
  build_timeout = "3m"
  ready_timeout = %q
}

postgres { dsn = %q }

s3 {
  endpoint   = %q
  bucket     = %q
  region     = %q
  access_key = %q
}

vault {
  address = %q
  mount   = %q
  key     = "pier-e2e"
  create_key = true
}

consul {
  address = "http://%s"
  prefix  = %q
}

nomad {
  job_id    = %q
  address   = %q
  driver    = "raw_exec"
  pier_path = %q
}
`, filepath.Join(dir, "control"), ports[0], readyTimeout, pg, s3.URL, bucket, s3.Region, s3.AccessKey,
		vault.Addr, vault.Transit, consul.Addr, bucket, "build-"+bucket, nomad.Addr, testenv.PierBinary(t))
	cfg += strings.ReplaceAll(opts.extra, "{{api}}", fmt.Sprintf("http://127.0.0.1:%d", ports[0]))
	st := &prodStack{
		cfgPath: filepath.Join(dir, "pier.hcl"),
		api:     fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		token:   "pier_e2e_bootstrap_token_0123456789",
		pgDSN:   pg,
		vault:   vault,
	}
	if err := os.WriteFile(st.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Secrets through the environment, as an operator would.
	st.env = []string{"PIER_BOOTSTRAP_TOKEN=" + st.token, "PIER_S3_SECRET_KEY=" + s3.SecretKey, "VAULT_TOKEN=" + vault.Token,
		"PIER_TELEMETRY_TOKEN=pier_e2e_telemetry_token_0123456789"}

	s3Host := strings.TrimPrefix(s3.URL, "http://")
	for i := range edges {
		id := fmt.Sprintf("edge-%c", 'a'+i)
		e := &prodEdge{id: id, addr: fmt.Sprintf("127.0.0.1:%d", ports[1+i]), proxy: testenv.NewProxy(t, s3Host)}
		st.startEdge(t, e)
		st.edges = append(st.edges, e)
	}
	st.control = testenv.StartPier(t, "pier-control", st.api+"/healthz", st.env,
		"serve", "--config", st.cfgPath, "--roles", "control")
	return st
}

func (st *prodStack) startEdge(t *testing.T, e *prodEdge) {
	t.Helper()
	env := append(append([]string{}, st.env...), "PIER_EDGE_ID="+e.id, "PIER_EDGE_LISTEN="+e.addr,
		"PIER_DATA_DIR="+filepath.Join(filepath.Dir(st.cfgPath), e.id), "PIER_S3_ENDPOINT=http://"+e.proxy.Addr,
		"PIER_EDGE_CONTROL_URL="+st.api) // runtime logs and metrics go to control
	e.srv = testenv.StartPier(t, "pier-"+e.id, "http://"+e.addr+"/healthz", env,
		"serve", "--config", st.cfgPath, "--roles", "edge")
}

func (st *prodStack) call(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	return testenv.CallAPI(t, st.api, st.token, method, path, body, out)
}

func (st *prodStack) deploy(t *testing.T, project, ref string) deployment {
	t.Helper()
	var d deployment
	if code := st.call(t, "POST", "/v1/projects/"+project+"/deployments", map[string]string{"ref": ref}, &d); code != 201 {
		t.Fatalf("deploy: %d", code)
	}
	testenv.WaitFor(t, 4*time.Minute, "deployment "+d.ID, func() bool {
		st.call(t, "GET", "/v1/deployments/"+d.ID, nil, &d)
		return d.State == "ready" || d.State == "failed" || d.State == "canceled"
	})
	return d
}

func (st *prodStack) log(t *testing.T, id string) string {
	req, _ := http.NewRequest("GET", st.api+"/v1/deployments/"+id+"/logs", nil)
	req.Header.Set("Authorization", "Bearer "+st.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func edgeGet(t *testing.T, addr, host, path string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestProductionAdapters deploys through every production adapter: the
// project is stored in PostgreSQL with its git token sealed by Vault
// transit, the build runs as a Nomad batch job (raw_exec) that uploads to
// MinIO, both edges (separate processes) sync from MinIO and confirm
// through Consul, and the pointer flips only then. Rollback too.
func TestProductionAdapters(t *testing.T) {
	st := startProd(t, prodOptions{edges: 2})
	git := testenv.GitServer(t, gitToken)
	url, sha1 := git.CreateRepo(t, "www", map[string]string{
		"index.html":                "<h1>prod one</h1>",
		"assets/site.5e1f2a3b9c.js": "console.log('one')",
	})
	if code := st.call(t, "POST", "/v1/projects", map[string]any{"name": "www", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}

	// The database holds Vault ciphertext, never the token.
	conn, err := pgx.Connect(context.Background(), st.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sealed []byte
	if err := conn.QueryRow(context.Background(), `SELECT git_token FROM projects WHERE name = 'www'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(sealed), "vault:v1:") || strings.Contains(string(sealed), gitToken) {
		t.Errorf("projects.git_token = %q, want vault:v1: ciphertext", sealed)
	}

	d1 := st.deploy(t, "www", sha1)
	if d1.State != "ready" {
		t.Fatalf("deployment 1 on Nomad: %s (%s)\n%s", d1.State, d1.Error, st.log(t, d1.ID))
	}
	if log := st.log(t, d1.ID); !strings.Contains(log, "Cloning") && !strings.Contains(log, "clone") {
		t.Errorf("the Nomad build log did not reach control:\n%s", log)
	}
	for _, e := range st.edges {
		testenv.WaitFor(t, 30*time.Second, "prod one on "+e.id, func() bool {
			code, body, _ := edgeGet(t, e.addr, "www.pier.test", "/")
			return code == 200 && strings.Contains(body, "prod one")
		})
	}

	sha2 := git.Commit(t, "www", map[string]string{"index.html": "<h1>prod two</h1>"})
	d2 := st.deploy(t, "www", sha2)
	if d2.State != "ready" {
		t.Fatalf("deployment 2: %s (%s)\n%s", d2.State, d2.Error, st.log(t, d2.ID))
	}
	for _, e := range st.edges {
		testenv.WaitFor(t, 30*time.Second, "prod two on "+e.id, func() bool {
			_, body, _ := edgeGet(t, e.addr, "www.pier.test", "/")
			return strings.Contains(body, "prod two")
		})
		// The unchanged asset is the same blob: served, immutable.
		code, _, h := edgeGet(t, e.addr, "www.pier.test", "/assets/site.5e1f2a3b9c.js")
		if code != 200 || !strings.Contains(h.Get("Cache-Control"), "immutable") {
			t.Errorf("%s asset = %d %q", e.id, code, h.Get("Cache-Control"))
		}
	}

	var cut struct {
		DeploymentID string `json:"deployment_id"`
		Edges        []struct {
			Edge string `json:"edge"`
		} `json:"edges"`
		TotalMS float64 `json:"total_ms"`
	}
	if code := st.call(t, "POST", "/v1/projects/www/rollback", map[string]string{}, &cut); code != 200 || cut.DeploymentID != d1.ID {
		t.Fatalf("rollback = %d %+v", code, cut)
	}
	if len(cut.Edges) != len(st.edges) {
		t.Errorf("cutover confirmed by %d edges, want %d", len(cut.Edges), len(st.edges))
	}
	t.Logf("rollback through Consul: %.1f ms", cut.TotalMS)
	for _, e := range st.edges {
		testenv.WaitFor(t, 10*time.Second, "prod one again on "+e.id, func() bool {
			_, body, _ := edgeGet(t, e.addr, "www.pier.test", "/")
			return strings.Contains(body, "prod one")
		})
	}
}

// TestProductionKeyRotation rotates the Vault transit key and rewraps every
// stored secret: the database then holds only vault:v2: ciphertext, and
// builds of the private repository still authenticate.
func TestProductionKeyRotation(t *testing.T) {
	st := startProd(t, prodOptions{edges: 1})
	git := testenv.GitServer(t, gitToken)
	url, _ := git.CreateRepo(t, "www", map[string]string{"index.html": "<h1>rotated</h1>"})
	if code := st.call(t, "POST", "/v1/projects", map[string]any{"name": "www", "repo_url": url, "git_token": gitToken}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	if err := st.vault.Do(t.Context(), "POST", st.vault.Transit+"/keys/pier-e2e/rotate", nil, nil); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	var out struct{ Rewrapped int }
	if code := st.call(t, "POST", "/v1/admin/secrets/rewrap", nil, &out); code != 200 || out.Rewrapped != 1 {
		t.Fatalf("rewrap = %d %+v", code, out)
	}
	conn, err := pgx.Connect(context.Background(), st.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sealed []byte
	if err := conn.QueryRow(context.Background(), `SELECT git_token FROM projects WHERE name = 'www'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(sealed), "vault:v2:") {
		t.Fatalf("after rotation and rewrap: %q, want vault:v2:", sealed)
	}
	d := st.deploy(t, "www", "main")
	if d.State != "ready" {
		t.Fatalf("build with the rewrapped token: %s (%s)\n%s", d.State, d.Error, st.log(t, d.ID))
	}
}
