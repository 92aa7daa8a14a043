package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// TestCLIDeployDirectory deploys a local directory with `pier deploy`,
// changes one file and deploys again: the second run uploads only that
// file, and both deployments are served.
func TestCLIDeployDirectory(t *testing.T) {
	dev := testenv.StartDev(t, t.TempDir())
	if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": "local", "repo_url": "https://git.example.test/local.git"}, nil); code != 201 {
		t.Fatalf("create project: %d", code)
	}
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", "<h1>local one</h1>")
	write("assets/app.0a1b2c3d4e.js", "console.log(1)")
	write("about.html", "about")

	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(testenv.PierBinary(t), append([]string{"deploy", "--project", "local"}, args...)...)
		cmd.Env = append(os.Environ(), "PIER_API="+dev.APIURL, "PIER_TOKEN="+dev.Token)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("pier deploy: %v\n%s%s", err, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	out, progress := run(dir)
	if !strings.Contains(progress, "uploaded 3 new file(s)") || !strings.HasPrefix(out, "ready: http://dpl-") {
		t.Errorf("first deploy: stdout %q, progress:\n%s", out, progress)
	}
	host := "local." + dev.BaseDomain
	testenv.WaitFor(t, 10*time.Second, "local one live", func() bool {
		return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "local one")
	})

	write("index.html", "<h1>local two</h1>")
	out, progress = run("--json", dir)
	var d struct{ ID, State string }
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.State != "ready" {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if progress != "" {
		t.Errorf("--json wrote progress to stderr: %q", progress)
	}
	testenv.WaitFor(t, 10*time.Second, "local two live", func() bool {
		return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "local two")
	})
	out, progress = run(dir) // nothing changed: nothing sent
	if !strings.Contains(progress, "uploaded 0 new file(s); 3 already on the server") {
		t.Errorf("unchanged redeploy progress:\n%s", progress)
	}
}
