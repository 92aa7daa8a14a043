package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pierhq/pier/tests/testenv"
)

// envSite is a repository whose build writes the variables it sees into
// the page it serves: the build's environment, observed over HTTP.
var envSite = map[string]string{"README.md": "the build writes out/index.html"}

const envBuild = `mkdir -p out && printf '<p>greeting=[%s] runtime=[%s]</p>' "$GREETING" "$RUNTIME_SECRET" > out/index.html`

// Secret values: long and distinctive, so finding one anywhere is meaningful.
const (
	greetingV1    = "hello-from-build-4f1c2a"
	greetingV2    = "bonjour-from-build-9e7d3b"
	runtimeSecret = "rt-secret-7c41d0e5b2a9f8c3"
)

func setEnv(t *testing.T, call func(method, path string, body, out any) int, project, name, value, scope string, targets ...string) {
	t.Helper()
	body := map[string]any{"value": value, "scope": scope}
	if len(targets) > 0 {
		body["targets"] = targets
	}
	if code := call("PUT", "/v1/projects/"+project+"/env/"+name, body, nil); code != 200 {
		t.Fatalf("set %s: %d", name, code)
	}
}

// TestDevEnvVars: build-scoped variables reach the build and runtime-scoped
// ones do not; a change reaches only new deployments; listing never shows
// a value, another project's variables stay out of reach, and neither the
// database nor the object store holds a value in plaintext.
func TestDevEnvVars(t *testing.T) {
	git := testenv.GitServer(t, gitToken)
	url, _ := git.CreateRepo(t, "envsite", envSite)
	dataDir := t.TempDir()
	dev := testenv.StartDev(t, dataDir)
	call := func(method, path string, body, out any) int { return dev.API(t, method, path, body, out) }
	for _, name := range []string{"envsite", "other"} {
		if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": name, "repo_url": url, "git_token": gitToken,
			"framework": "static", "build_command": envBuild, "output_dir": "out"}, nil); code != http.StatusCreated {
			t.Fatalf("create %s: %d", name, code)
		}
	}
	setEnv(t, call, "envsite", "GREETING", greetingV1, "build")
	setEnv(t, call, "envsite", "RUNTIME_SECRET", runtimeSecret, "runtime")
	setEnv(t, call, "envsite", "PREVIEW_ONLY", "preview-only-value-5a5a", "both", "preview")

	d1 := deploy(t, dev, "envsite", "main", 2*time.Minute)
	if d1.State != "ready" {
		t.Fatalf("deployment 1: %s (%s)\n%s", d1.State, d1.Error, buildLog(t, dev, d1.ID))
	}
	host1 := d1.ID + ".envsite." + dev.BaseDomain
	_, page := body(t, dev, host1)
	if !strings.Contains(page, "greeting=["+greetingV1+"]") || !strings.Contains(page, "runtime=[]") {
		t.Fatalf("deployment 1 page = %q: want the build variable and no runtime one", page)
	}

	// Changing the variable leaves deployment 1 as it was; a redeploy picks it up.
	setEnv(t, call, "envsite", "GREETING", greetingV2, "build")
	d2 := deploy(t, dev, "envsite", "main", 2*time.Minute)
	if d2.State != "ready" {
		t.Fatalf("deployment 2: %s (%s)", d2.State, d2.Error)
	}
	if _, page := body(t, dev, d2.ID+".envsite."+dev.BaseDomain); !strings.Contains(page, greetingV2) {
		t.Errorf("redeploy page = %q, want %s", page, greetingV2)
	}
	if _, page := body(t, dev, host1); !strings.Contains(page, greetingV1) {
		t.Errorf("deployment 1 page changed to %q", page)
	}

	// Write-only: names and metadata, never values.
	var listed json.RawMessage
	if code := dev.API(t, "GET", "/v1/projects/envsite/env", nil, &listed); code != 200 {
		t.Fatalf("list: %d", code)
	}
	for _, v := range []string{greetingV1, greetingV2, runtimeSecret, "pier:v1:"} {
		if strings.Contains(string(listed), v) {
			t.Errorf("the variable listing contains %q: %s", v, listed)
		}
	}
	if !strings.Contains(string(listed), "RUNTIME_SECRET") {
		t.Errorf("listing lacks the names: %s", listed)
	}
	// Another project: none of envsite's variables, and no way to them.
	var other struct{ Env []any }
	dev.API(t, "GET", "/v1/projects/other/env", nil, &other)
	if len(other.Env) != 0 {
		t.Errorf("project other lists %d variables", len(other.Env))
	}
	if code := dev.API(t, "DELETE", "/v1/projects/other/env/GREETING", nil, nil); code != http.StatusNotFound {
		t.Errorf("delete envsite's variable through other = %d, want 404", code)
	}
	for _, path := range []string{"/v1/projects/envsite/env/GREETING", "/v1/projects/other/env/GREETING"} {
		if code := dev.API(t, "GET", path, nil, nil); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s = %d: a value must not be readable", path, code)
		}
	}

	// The runtime variable is published sealed for the edges.
	raw, err := os.ReadFile(filepath.Join(dataDir, "blobs", "env", d1.ID+".json"))
	if err != nil {
		t.Fatalf("published runtime env: %v", err)
	}
	if !strings.Contains(string(raw), "RUNTIME_SECRET") || strings.Contains(string(raw), runtimeSecret) {
		t.Errorf("published runtime env = %s: want the name, sealed", raw)
	}

	// The database holds no value in plaintext (the file and its WAL).
	dev.Stop(t)
	assertNoPlaintext(t, dataDir, "control.db")
}

func assertNoPlaintext(t *testing.T, dir, prefix string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	if len(files) == 0 {
		t.Fatalf("no %s* in %s", prefix, dir)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{greetingV1, greetingV2, runtimeSecret, gitToken} {
			if strings.Contains(string(raw), v) {
				t.Errorf("%s holds %q in plaintext", filepath.Base(f), v)
			}
		}
	}
}

// TestProductionEnvNoPlaintext: on PostgreSQL with Vault transit, every
// stored variable value (the project's and the one frozen with a
// deployment) is vault:v1: ciphertext, and no column of any table holds a
// value in plaintext; the build still gets it.
func TestProductionEnvNoPlaintext(t *testing.T) {
	st := startProd(t, prodOptions{edges: 1})
	git := testenv.GitServer(t, gitToken)
	url, _ := git.CreateRepo(t, "envsite", envSite)
	call := func(method, path string, body, out any) int { return st.call(t, method, path, body, out) }
	if code := call("POST", "/v1/projects", map[string]any{"name": "envsite", "repo_url": url, "git_token": gitToken,
		"framework": "static", "build_command": envBuild, "output_dir": "out"}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	setEnv(t, call, "envsite", "GREETING", greetingV1, "build")
	setEnv(t, call, "envsite", "RUNTIME_SECRET", runtimeSecret, "runtime")
	d := st.deploy(t, "envsite", "main")
	if d.State != "ready" {
		t.Fatalf("deployment: %s (%s)\n%s", d.State, d.Error, st.log(t, d.ID))
	}
	code, page, _ := edgeGet(t, st.edges[0].addr, d.ID+".envsite.pier.test", "/")
	if code != 200 || !strings.Contains(page, greetingV1) || !strings.Contains(page, "runtime=[]") {
		t.Errorf("page = %d %q", code, page)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, st.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{`SELECT value FROM env_vars`, `SELECT value FROM deployment_env`} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var v string
			rows.Scan(&v)
			n++
			if !strings.HasPrefix(v, "vault:v1:") {
				t.Errorf("%s: %q, want vault:v1: ciphertext", q, v)
			}
		}
		rows.Close()
		if n != 2 {
			t.Errorf("%s: %d rows, want 2", q, n)
		}
	}
	// Every row of every table, as text.
	tables, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		tables.Scan(&n)
		names = append(names, n)
	}
	tables.Close()
	for _, table := range names {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var row string
			rows.Scan(&row)
			for _, v := range []string{greetingV1, runtimeSecret, gitToken} {
				if strings.Contains(row, v) {
					t.Errorf("table %s holds %q in plaintext", table, v)
				}
			}
		}
		rows.Close()
	}
}
