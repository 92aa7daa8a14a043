package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierhq/pier/tests/testenv"
)

// pierCLI runs the pier binary as a developer would: in dir, with its own
// config dir (the saved login) and no PIER_* variables of the test's.
type pierCLI struct {
	bin, dir, config string
}

func newPierCLI(t *testing.T, dir string) *pierCLI {
	return &pierCLI{bin: testenv.PierBinary(t), dir: dir, config: t.TempDir()}
}

func (c *pierCLI) cmd(ctx context.Context, stdin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	env := []string{"XDG_CONFIG_HOME=" + c.config, "USER=alice"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIER_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "USER=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs pier and returns stdout, stderr and the exit code.
func (c *pierCLI) run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := c.cmd(context.Background(), stdin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("pier %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ok runs pier and fails the test on a non-zero exit.
func (c *pierCLI) ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errs, code := c.run(t, stdin, args...)
	if code != 0 {
		t.Fatalf("pier %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

// TestCLIWorkflow walks a developer through the CLI against pier dev:
// login (saved 0600, checked), whoami, init (framework detected, pier.json
// written, project created), deploy from pier.json, env set/list/rm
// (values never printed), ls with and without --json, staging and a
// sandbox at their own URLs, rollback and promote, and the helpful errors.
func TestCLIWorkflow(t *testing.T) {
	dev := testenv.StartDev(t, t.TempDir())
	dir := filepath.Join(t.TempDir(), "My Site")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>v1</h1>"), 0o644)
	cli := newPierCLI(t, dir)

	// Not logged in yet.
	if _, errs, code := cli.run(t, "", "ls"); code != 1 || !strings.Contains(errs, "pier login") {
		t.Errorf("ls before login: exit %d, stderr %q: want a hint to run pier login", code, errs)
	}
	// A wrong token is refused and nothing is saved.
	if _, errs, code := cli.run(t, "pier_wrong\n", "login", "--api", dev.APIURL); code != 1 || !strings.Contains(errs, "refused") {
		t.Errorf("login with a wrong token: exit %d, stderr %q", code, errs)
	}
	out := cli.ok(t, dev.Token+"\n", "login", "--api", dev.APIURL)
	if !strings.Contains(out, "Logged in to "+dev.APIURL+" as dev (admin scope)") {
		t.Errorf("login: %q", out)
	}
	st, err := os.Stat(filepath.Join(cli.config, "pier", "config.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("saved login: %v, mode %v: want 0600", err, st.Mode().Perm())
	}
	if out := cli.ok(t, "", "whoami"); !strings.Contains(out, "dev (admin scope") {
		t.Errorf("whoami: %q", out)
	}
	// A flag overrides the saved login: a bad token gets the login hint.
	if _, errs, code := cli.run(t, "", "whoami", "--token", "pier_nope"); code != 1 || !strings.Contains(errs, "run `pier login`") {
		t.Errorf("whoami with a bad --token: exit %d, stderr %q", code, errs)
	}

	// init: static site detected, project created, pier.json written.
	_, errs, code := cli.run(t, "", "init")
	if code != 0 || !strings.Contains(errs, "detected static") || !strings.Contains(errs, "created project my-site") {
		t.Fatalf("init: exit %d, stderr %q", code, errs)
	}
	var pf map[string]any
	raw, _ := os.ReadFile(filepath.Join(dir, "pier.json"))
	if json.Unmarshal(raw, &pf); pf["project"] != "my-site" || pf["framework"] != "static" {
		t.Errorf("pier.json = %s", raw)
	}
	if _, errs, _ := cli.run(t, "", "init"); !strings.Contains(errs, "exists; linked") {
		t.Errorf("second init: %q", errs)
	}

	// deploy reads the login and pier.json; pier.json itself is not served.
	out = cli.ok(t, "", "deploy")
	if !strings.HasPrefix(out, "ready: http://dpl-") {
		t.Errorf("deploy: %q", out)
	}
	host := "my-site." + dev.BaseDomain
	testenv.WaitFor(t, 10*time.Second, "v1 live", func() bool { return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "v1") })
	if resp := dev.Get(t, 0, host, "/pier.json"); resp.StatusCode != 404 {
		t.Errorf("/pier.json: %d, want 404 (config, not content)", resp.StatusCode)
	}

	// env: the value comes from stdin and is never printed back.
	secret := "s3cr3t-value-xyz"
	out = cli.ok(t, secret+"\n", "env", "set", "--target", "production,staging", "API_KEY")
	if strings.Contains(out, secret) || !strings.Contains(out, "set API_KEY on my-site") {
		t.Errorf("env set: %q", out)
	}
	cli.ok(t, "", "env", "set", "MODE", "live")
	out = cli.ok(t, "", "env", "list")
	if strings.Contains(out, secret) || strings.Contains(out, "live") || !strings.Contains(out, "API_KEY") || !strings.Contains(out, "production,staging") {
		t.Errorf("env list: %q", out)
	}
	out = cli.ok(t, "", "env", "list", "--json")
	var envs struct{ Env []map[string]any }
	if json.Unmarshal([]byte(out), &envs) != nil || len(envs.Env) != 2 || strings.Contains(out, secret) {
		t.Errorf("env list --json: %q", out)
	}
	cli.ok(t, "", "env", "rm", "MODE")
	if _, errs, code := cli.run(t, "", "env", "rm", "MODE"); code != 1 || !strings.Contains(errs, "no variable MODE") {
		t.Errorf("env rm of a missing variable: exit %d, %q", code, errs)
	}
	if _, _, code := cli.run(t, "", "env", "set", "--target", "qa", "X", "1"); code != 1 {
		t.Errorf("env set with a bad target: exit %d, want 1", code)
	}

	// A second production deployment, then staging and a sandbox.
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>v2</h1>"), 0o644)
	cli.ok(t, "", "deploy")
	testenv.WaitFor(t, 10*time.Second, "v2 live", func() bool { return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "v2") })
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>staged</h1>"), 0o644)
	out = cli.ok(t, "", "deploy", "--environment", "staging")
	if !strings.Contains(out, "live:  http://staging.my-site.") {
		t.Errorf("deploy to staging: %q", out)
	}
	testenv.WaitFor(t, 10*time.Second, "staging live", func() bool {
		return strings.Contains(readBody(t, dev.Get(t, 0, "staging."+host, "/")), "staged")
	})
	if body := readBody(t, dev.Get(t, 0, host, "/")); !strings.Contains(body, "v2") {
		t.Errorf("production after a staging deploy: %q", body)
	}
	if out := cli.ok(t, "", "open", "--environment", "sandbox:alice"); !strings.HasPrefix(out, "http://sandbox-alice.my-site.") {
		t.Errorf("open sandbox: %q", out)
	}

	// ls: projects, deployments, --json.
	if out := cli.ok(t, "", "ls"); !strings.Contains(out, "my-site") || !strings.Contains(out, "LIVE DEPLOYMENT") {
		t.Errorf("ls: %q", out)
	}
	out = cli.ok(t, "", "ls", "--json", "my-site")
	var list struct {
		Deployments []struct {
			ID, Environment, State string
			Live                   bool
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Deployments) != 3 {
		t.Fatalf("ls --json my-site: %v: %q", err, out)
	}
	if list.Deployments[0].Environment != "staging" || !list.Deployments[1].Live {
		t.Errorf("deployments: %+v", list.Deployments)
	}
	if out := cli.ok(t, "", "ls", "my-site"); !strings.Contains(out, "staging") || !strings.Contains(out, "live") {
		t.Errorf("ls my-site: %q", out)
	}

	// rollback to v1, then promote v2 again.
	out = cli.ok(t, "", "rollback")
	if !strings.Contains(out, "rolled back: "+list.Deployments[2].ID+" is live") {
		t.Errorf("rollback: %q", out)
	}
	testenv.WaitFor(t, 10*time.Second, "v1 back", func() bool { return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "v1") })
	out = cli.ok(t, "", "promote", list.Deployments[1].ID)
	if !strings.Contains(out, "promoted: "+list.Deployments[1].ID) {
		t.Errorf("promote: %q", out)
	}

	// Helpful errors.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ls", "nope"}, "`pier ls`"},
		{[]string{"deploy", "--project", "nope"}, "`pier ls`"},
		{[]string{"promote", "dpl-nope"}, "not found"},
		{[]string{"deploy", "--environment", "sandbox:Bad!"}, "sandbox"},
	} {
		if _, errs, code := cli.run(t, "", tt.args...); code != 1 || !strings.Contains(errs, tt.want) {
			t.Errorf("pier %v: exit %d, stderr %q: want %q", tt.args, code, errs, tt.want)
		}
	}
	other := newPierCLI(t, t.TempDir())
	other.ok(t, dev.Token+"\n", "login", "--api", dev.APIURL)
	if _, errs, code := other.run(t, "", "env", "list"); code != 1 || !strings.Contains(errs, "pier init") {
		t.Errorf("env list outside a project: exit %d, %q", code, errs)
	}
	// --help on every command exits 0 and says something useful.
	for _, c := range []string{"login", "logout", "whoami", "init", "deploy", "sync", "ls", "promote", "rollback", "open"} {
		_, errs, code := cli.run(t, "", c, "--help")
		want := "Usage: pier " + c
		if c == "sync" { // pier deploy --watch
			want = "--watch keeps running"
		}
		if code != 0 || !strings.Contains(errs, want) {
			t.Errorf("pier %s --help: exit %d, %q", c, code, errs)
		}
	}
	if out, _, code := cli.run(t, "", "env", "--help"); code != 0 || !strings.Contains(out, "pier env set") {
		t.Errorf("pier env --help: exit %d, %q", code, out)
	}
}

// TestCLIDomains walks `pier domains` against pier dev with an in-process
// DNS server: add (the TXT record printed), ls and ls --json, verify
// failing with the reason (no TXT record, then the wrong one), verify
// passing once the DNS holds the records (the edge serves the domain), rm,
// and the helpful errors.
func TestCLIDomains(t *testing.T) {
	dns := testenv.DNS(t)
	dev := testenv.StartDev(t, t.TempDir(), "--dns-resolver", dns.Addr)
	for _, name := range []string{"shop", "blog"} {
		if code := dev.API(t, "POST", "/v1/projects", map[string]any{"name": name}, nil); code != 201 {
			t.Fatalf("create project %s: %d", name, code)
		}
	}
	site := t.TempDir()
	os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>shop front</h1>"), 0o644)
	cli := newPierCLI(t, site)
	cli.ok(t, dev.Token+"\n", "login", "--api", dev.APIURL)
	cli.ok(t, "", "deploy", "--project", "shop", site)

	const domain = "www.shop.test"
	if out, errs, code := cli.run(t, "", "domains", "ls", "--project", "shop"); code != 0 || out != "" || !strings.Contains(errs, "no custom domains") {
		t.Errorf("domains ls with none: exit %d, %q, %q", code, out, errs)
	}
	out := cli.ok(t, "", "domains", "add", "--project", "shop", domain)
	if !strings.Contains(out, "added "+domain+" to shop (pending)") || !regexp.MustCompile(`\n  TXT +_pier-challenge\.`+regexp.QuoteMeta(domain)+` +pier-verify=\S+ +proves you own`).MatchString(out) ||
		!strings.Contains(out, "pier domains verify "+domain) {
		t.Errorf("domains add: %q", out)
	}
	out = cli.ok(t, "", "domains", "ls", "--project", "shop", "--json")
	var list struct {
		Domains []struct {
			Name, State, Token string
			Records            []struct{ Type, Name, Value string }
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Domains) != 1 || list.Domains[0].State != "pending" || list.Domains[0].Token == "" {
		t.Fatalf("domains ls --json: %v: %q", err, out)
	}
	token := list.Domains[0].Token
	if out := cli.ok(t, "", "domains", "ls", "--project", "shop"); !strings.Contains(out, "pending") || !strings.Contains(out, "_pier-challenge."+domain+" = "+token) {
		t.Errorf("domains ls: %q", out)
	}

	// Verification fails with the reason, and changes nothing.
	for _, tt := range []struct {
		name string
		txt  []string
		want string
	}{
		{"no TXT record", nil, "is not verified (txt_missing): no TXT record at _pier-challenge." + domain},
		{"another token", []string{"pier-verify=someone-else"}, "is not verified (txt_mismatch)"},
		{"not pointing at the edges", []string{token}, "is not verified (not_pointing)"},
	} {
		if tt.txt != nil {
			dns.SetTXT("_pier-challenge."+domain, tt.txt...)
		}
		if _, errs, code := cli.run(t, "", "domains", "verify", "--project", "shop", domain); code != 1 || !strings.Contains(errs, tt.want) {
			t.Errorf("verify, %s: exit %d, stderr %q: want %q", tt.name, code, errs, tt.want)
		}
	}
	if out := cli.ok(t, "", "domains", "ls", "--project", "shop"); !strings.Contains(out, "pending") {
		t.Errorf("after failed verifications: %q", out)
	}
	// With the records in place: verified, and the edge serves the domain.
	dns.SetA(domain, "127.0.0.1")
	out = cli.ok(t, "", "domains", "verify", domain, "--project", "shop") // flags may follow the domain
	if !strings.Contains(out, domain+" is verified") {
		t.Errorf("domains verify: %q", out)
	}
	testenv.WaitFor(t, 10*time.Second, "the edge serves "+domain, func() bool {
		return strings.Contains(readBody(t, dev.Get(t, 0, domain, "/")), "shop front")
	})
	if out := cli.ok(t, "", "domains", "ls", "--project", "shop"); !strings.Contains(out, "verified") {
		t.Errorf("domains ls after verification: %q", out)
	}

	// Helpful errors.
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"domains", "add", "--project", "shop"}, 2, "DOMAIN is required"},
		{[]string{"domains", "add", "--project", "shop", "not a domain!"}, 1, "name"},
		{[]string{"domains", "add", "--project", "blog", domain}, 1, "domain"},
		{[]string{"domains", "verify", "--project", "shop", "nope.shop.test"}, 1, "shop has no domain nope.shop.test"},
		{[]string{"domains", "ls", "--project", "nope"}, 1, "`pier ls`"},
		{[]string{"domains", "frob"}, 2, "unknown command"},
		{[]string{"domains", "rm", "--project", "shop", "a.test", "b.test"}, 2, "unexpected argument"},
	} {
		if _, errs, code := cli.run(t, "", tt.args...); code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("pier %v: exit %d, stderr %q: want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
	if out, _, code := cli.run(t, "", "domains", "--help"); code != 0 || !strings.Contains(out, "pier domains verify") {
		t.Errorf("pier domains --help: exit %d, %q", code, out)
	}

	// rm: gone from the list and from the edge.
	if out := cli.ok(t, "", "domains", "rm", "--project", "shop", domain); !strings.Contains(out, "removed "+domain+" from shop") {
		t.Errorf("domains rm: %q", out)
	}
	if _, errs, code := cli.run(t, "", "domains", "rm", "--project", "shop", domain); code != 1 || !strings.Contains(errs, "shop has no domain "+domain) {
		t.Errorf("second rm: exit %d, %q", code, errs)
	}
	testenv.WaitFor(t, 10*time.Second, "the edge drops "+domain, func() bool {
		return !strings.Contains(readBody(t, dev.Get(t, 0, domain, "/")), "shop front")
	})
}

// TestCLISync runs `pier sync` (deploy --watch) on a sandbox and measures
// how long a changed file takes to be served at the sandbox's URL. The
// figure is printed, not asserted.
func TestCLISync(t *testing.T) {
	dev := testenv.StartDev(t, t.TempDir())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>sync 0</h1>"), 0o644)
	for i := 0; i < 50; i++ { // files that do not change
		os.WriteFile(filepath.Join(dir, "page"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+".html"), []byte(strings.Repeat("p", 1000+i)), 0o644)
	}
	cli := newPierCLI(t, dir)
	cli.ok(t, dev.Token+"\n", "login", "--api", dev.APIURL)
	cli.ok(t, "", "init", "--name", "live")

	ctx, cancel := context.WithCancel(context.Background())
	cmd := cli.cmd(ctx, "", "sync")
	stdout, _ := cmd.StdoutPipe()
	var errb syncBuf
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("pier sync exited:\n%s", errb.String())
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatalf("pier sync printed nothing for 30s:\n%s", errb.String())
		}
		return ""
	}
	if l := next(); !strings.Contains(l, "http://sandbox-alice.live.") {
		t.Fatalf("first sync: %q", l)
	}
	host := "sandbox-alice.live." + dev.BaseDomain
	testenv.WaitFor(t, 10*time.Second, "sandbox live", func() bool {
		return strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), "sync 0")
	})
	var took []time.Duration
	for i := 1; i <= 5; i++ {
		want := "sync " + string(rune('0'+i))
		start := time.Now()
		os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>"+want+"</h1>"), 0o644)
		for !strings.Contains(readBody(t, dev.Get(t, 0, host, "/")), want) { // polled every 5ms
			if time.Since(start) > 20*time.Second {
				t.Fatalf("%s not served after 20s:\n%s", want, errb.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
		next()
	}
	if !strings.Contains(errb.String(), "uploaded 1 new file(s); 50 already on the server") && !strings.Contains(errb.String(), "watching") {
		t.Errorf("sync progress:\n%s", errb.String())
	}
	if body := readBody(t, dev.Get(t, 0, "live."+dev.BaseDomain, "/")); strings.Contains(body, "sync") {
		t.Errorf("production serves the sandbox: %q", body)
	}
	t.Logf("pier sync: change → served at the sandbox URL (51 files, 1 changed): %v", took)
}

// syncBuf is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
