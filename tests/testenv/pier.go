package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	pierOnce sync.Once
	pierBin  string
	pierErr  error
)

// PierBinary builds control/cmd/pier once per test binary and returns its
// path. PIER_BIN names a prebuilt binary instead.
func PierBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PIER_BIN"); p != "" {
		return p
	}
	pierOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pier-bin-")
		if err != nil {
			pierErr = err
			return
		}
		pierBin = filepath.Join(dir, "pier")
		cmd := exec.Command("go", "build", "-o", pierBin, "./control/cmd/pier")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			pierErr = fmt.Errorf("go build pier: %v\n%s", err, out)
		}
	})
	if pierErr != nil {
		t.Fatal(pierErr)
	}
	return pierBin
}

// removePierBinary deletes the binary PierBinary built (from StopAll).
func removePierBinary() {
	if pierBin != "" && os.Getenv("PIER_BIN") == "" {
		os.RemoveAll(filepath.Dir(pierBin))
	}
}

// RepoRoot is the module root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate source")
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// DevInfo mirrors what `pier dev` writes to <data-dir>/dev.json.
type DevInfo struct {
	APIURL     string   `json:"api_url"`
	EdgeURLs   []string `json:"edge_urls"`
	BaseDomain string   `json:"base_domain"`
	Token      string   `json:"token"`
	DataDir    string   `json:"data_dir"`
	PID        int      `json:"pid"`

	// EdgeHTTPSURLs are the edges' HTTPS listeners (--https-addr).
	EdgeHTTPSURLs []string `json:"edge_https_urls,omitempty"`
}

// Dev is a running `pier dev` process.
type Dev struct {
	DevInfo
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// StartDev runs `pier dev` on random loopback ports (API, edge and
// functions API, so tests can run side by side) with dataDir and
// waits until it serves. The process is stopped by t.Cleanup (or Stop).
func StartDev(t testing.TB, dataDir string, args ...string) *Dev {
	t.Helper()
	bin := PierBinary(t)
	os.Remove(filepath.Join(dataDir, "dev.json"))
	// The functions API on a free port too: the default 8787 collides with
	// any other pier dev on the machine (args may override it).
	argv := append([]string{"dev", "--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--edge-addr", "127.0.0.1:0",
		"--functions-addr", "127.0.0.1:0", "--log-level", "debug"}, args...)
	cmd := exec.Command(bin, argv...)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pier dev: %v", err)
	}
	d := &Dev{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.Stop(t)
		if t.Failed() {
			t.Logf("pier dev output:\n%s", d.Output())
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		raw, err := os.ReadFile(filepath.Join(dataDir, "dev.json"))
		if err == nil && json.Unmarshal(raw, &d.DevInfo) == nil && d.PID == cmd.Process.Pid {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("pier dev exited before serving:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pier dev did not start within 60s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Output is everything the process printed so far.
func (d *Dev) Output() string { return d.out.String() }

// Stop sends SIGINT and waits for a clean exit (SIGKILL after 20s).
func (d *Dev) Stop(t testing.TB) {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		t.Errorf("pier dev did not stop on SIGINT within 20s")
	}
	// Builds run in their own process group; make sure none outlive the test.
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
}

// Kill kills the process group with SIGKILL (a crash: no cleanup) and
// waits for it to exit.
func (d *Dev) Kill(t testing.TB) {
	select {
	case <-d.done:
		return
	default:
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
}

// API calls the control API with the dev token; body may be nil. It
// decodes a JSON answer into out (when non-nil) and returns the status.
func (d *Dev) API(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	return d.APIWithToken(t, d.Token, method, path, body, out)
}

// APIWithToken is API with another token ("" sends none).
func (d *Dev) APIWithToken(t testing.TB, token, method, path string, body, out any) int {
	t.Helper()
	return CallAPI(t, d.APIURL, token, method, path, body, out)
}

// CallAPI calls a Pier control API at base with token ("" sends none),
// JSON-encoding body when not nil and decoding a JSON answer into out when
// not nil. It returns the status.
func CallAPI(t testing.TB, base, token, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// Get fetches path from edge i with the given Host header.
func (d *Dev) Get(t testing.TB, edge int, host, path string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.EdgeURLs[edge]+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	tr := &http.Transport{DisableCompression: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	return resp
}

// WaitFor polls cond every 100ms until it returns true or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartPier runs `pier <args...>` (e.g. serve --config F --roles edge) as a
// test server with extra environment, and waits until healthURL answers
// 200 (skipped when empty). It is stopped by t.Cleanup.
func StartPier(t testing.TB, name string, healthURL string, env []string, args ...string) *Server {
	t.Helper()
	s, err := StartServer(name, append([]string{PierBinary(t)}, args...), env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s output:\n%s", name, s.Log())
		}
		s.Stop()
	})
	if healthURL != "" {
		if err := s.WaitHTTP(healthURL, 2*time.Minute, nil); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
