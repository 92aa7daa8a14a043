// proc.go: the shared machinery for test servers that run as processes
// (Consul, Nomad and Vault agents in -dev mode, MinIO): building their
// binaries once (tests/tools/build.sh), starting them in their own process
// group with their output in a log file, waiting until they answer, and
// stopping them — by StopAll, or by a watchdog when the test binary exits
// however it exits.

package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Required reports whether a missing server must fail the test rather than
// skip it (PIER_REQUIRE_SERVERS=1, set by `make test` and CI).
func Required() bool { return os.Getenv("PIER_REQUIRE_SERVERS") == "1" }

// Unavailable skips t, or fails it when servers are required.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("testenv: %s (PIER_REQUIRE_SERVERS=1)", msg)
	}
	t.Skipf("testenv: %s", msg)
}

var (
	toolMu    sync.Mutex
	toolPaths = map[string]string{}
)

// Tool returns the path of a test server binary ("consul", "nomad",
// "vault", "minio"), building it with tests/tools/build.sh when it is not
// in the cache yet (minutes, once per machine). PIER_<NAME>_BIN (e.g.
// PIER_CONSUL_BIN) names a binary to use instead.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p := os.Getenv("PIER_" + strings.ToUpper(name) + "_BIN"); p != "" {
		return p
	}
	toolMu.Lock()
	defer toolMu.Unlock()
	if p, ok := toolPaths[name]; ok {
		return p
	}
	cmd := exec.Command("bash", filepath.Join(RepoRoot(t), "tests", "tools", "build.sh"), name)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		Unavailable(t, "build %s: %v\n%s", name, err, stderr.String())
	}
	dir := strings.TrimSpace(string(out))
	matches, _ := filepath.Glob(filepath.Join(dir, name+"-*"))
	for _, m := range matches {
		if !strings.HasSuffix(m, ".tmp") {
			toolPaths[name] = m
			return m
		}
	}
	Unavailable(t, "%s not found in %s after building", name, dir)
	return ""
}

// Server is a process started for tests.
type Server struct {
	Name string
	Dir  string // scratch dir, removed on Stop
	cmd  *exec.Cmd
	log  *os.File
	pipe io.WriteCloser // closing it (or our exit) makes the watchdog kill the group
	done chan struct{}
	once sync.Once
}

var (
	serversMu sync.Mutex
	servers   []*Server
)

// StartServer starts argv with env (added to the environment; a "NAME="
// entry with no value removes NAME) in its own process group, in a new
// scratch directory, output to <dir>/<name>.log. The server is stopped by
// Stop, by StopAll, or when the test binary exits.
func StartServer(name string, argv []string, env []string) (*Server, error) {
	dir, err := os.MkdirTemp("", "pier-"+name+"-")
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = mergeEnv(os.Environ(), env)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &Server{Name: name, Dir: dir, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()

	// The watchdog waits for EOF on stdin — StopAll closing the pipe, or
	// this process exiting — then kills the server's group and removes dir.
	script := `cat >/dev/null; kill -TERM -- -"$1" 2>/dev/null; sleep 2; kill -KILL -- -"$1" 2>/dev/null; rm -rf -- "$2"`
	wd := exec.Command("sh", "-c", script, "sh", fmt.Sprint(cmd.Process.Pid), dir)
	wd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.pipe, err = wd.StdinPipe(); err == nil {
		err = wd.Start()
	}
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("start %s watchdog: %w", name, err)
	}
	go wd.Wait()

	serversMu.Lock()
	servers = append(servers, s)
	serversMu.Unlock()
	return s, nil
}

func mergeEnv(base, add []string) []string {
	out := make([]string, 0, len(base)+len(add))
	drop := map[string]bool{}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	for _, kv := range add {
		if !strings.HasSuffix(kv, "=") {
			out = append(out, kv)
		}
	}
	return out
}

// Exited is closed when the process ends.
func (s *Server) Exited() <-chan struct{} { return s.done }

// Log returns the server's output so far: the last 32 KiB of the lines
// that are not DEBUG request logs (which polling tests produce by the
// thousand and which would push everything useful out).
func (s *Server) Log() string {
	raw, _ := os.ReadFile(s.log.Name())
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(raw), "\n") {
		if strings.Contains(line, "level=DEBUG msg=request ") {
			continue
		}
		b.WriteString(line)
	}
	out := b.String()
	if len(out) > 32<<10 {
		out = out[len(out)-32<<10:]
	}
	return out
}

// WaitHTTP polls url until ok accepts an answer (nil ok: any 2xx), the
// process exits, or timeout passes.
func (s *Server) WaitHTTP(url string, timeout time.Duration, ok func(*http.Response) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if ok == nil {
		ok = func(r *http.Response) bool { return r.StatusCode/100 == 2 }
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			good := ok(resp)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if good {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited before it was ready:\n%s", s.Name, s.Log())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s after %s:\n%s", s.Name, url, timeout, s.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop terminates the server's process group (SIGTERM, then SIGKILL after
// 5s) and removes its directory.
func (s *Server) Stop() {
	s.once.Do(func() {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) // stragglers in the group
		s.log.Close()
		if s.pipe != nil {
			s.pipe.Close()
		}
		os.RemoveAll(s.Dir)
	})
}

// Kill ends the server's process group at once with SIGKILL, as a crash
// would, and waits for it; its directory stays until Stop.
func (s *Server) Kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// Pid is the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

func stopServers() {
	serversMu.Lock()
	all := servers
	servers = nil
	serversMu.Unlock()
	for _, s := range all {
		s.Stop()
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) { return freePort() }

// FreePorts returns n distinct free ports.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
