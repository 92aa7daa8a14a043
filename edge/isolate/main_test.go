package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixtures.cleanup()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkLeaks fails when goroutines started by this package (fetches,
// watchdogs) or by its HTTP transports outlive the tests.
func checkLeaks() error {
	var last string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		last = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "TestMain") || strings.Contains(g, "testing.(*M)") {
				continue
			}
			if strings.Contains(g, "edge/isolate.") || strings.Contains(g, "net/http.(*persistConn)") {
				last += g + "\n\n"
			}
		}
		if last == "" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("leaked goroutines:\n%s", last)
}

// compile compiles src or fails the test.
func compile(t testing.TB, name, src string) *Script {
	t.Helper()
	s, err := Compile(context.Background(), name, []byte(src))
	if err != nil {
		t.Fatalf("Compile(%s): %v", name, err)
	}
	return s
}

// testConfig is DefaultConfig with console output collected into logs.
func testConfig(t testing.TB, logs *logSink) Config {
	cfg := DefaultConfig()
	cfg.Logger = nil
	if logs != nil {
		cfg.OnLog = logs.add
	}
	return cfg
}

// start compiles src and starts a Runtime closed at the end of the test.
func start(t testing.TB, cfg Config, src string, env map[string]string) *Runtime {
	t.Helper()
	r, err := New(cfg, compile(t, "test.js", src), env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// serve sends one request to r.
func serve(t testing.TB, r *Runtime, method, target, body string) (*Response, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	return r.Serve(context.Background(), req, "req-"+method)
}

// mustServe is serve that fails the test on error.
func mustServe(t testing.TB, r *Runtime, method, target, body string) *Response {
	t.Helper()
	res, err := serve(t, r, method, target, body)
	if err != nil {
		t.Fatalf("Serve %s %s: %v", method, target, err)
	}
	return res
}

type logSink struct {
	mu      sync.Mutex
	entries []LogEntry
}

func (l *logSink) add(e LogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
}

func (l *logSink) all() []LogEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LogEntry(nil), l.entries...)
}

// localServer is an HTTP server on 127.0.0.1 for fetch tests.
func localServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newRequest builds a server-side request like the edge receives.
func newRequest(method, target, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return httptest.NewRequest(method, target, rd)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func asScriptError(err error, target **ScriptError) bool { return errors.As(err, target) }

func isErr(err, target error) bool { return errors.Is(err, target) }
