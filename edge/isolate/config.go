package isolate

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// Config holds the limits of every Runtime built from it.
type Config struct {
	// Timeout bounds one Serve or Invoke call, and the top-level evaluation in
	// New, in wall-clock time (waiting on fetch and timers included).
	// DefaultConfig: 30s.
	Timeout time.Duration
	// HeapMB is the V8 heap limit of one isolate. A script that reaches it is
	// terminated, the call fails with ErrHeapLimit and the isolate is replaced
	// before the next call. DefaultConfig: 128.
	HeapMB int
	// MaxBodyBytes bounds the request body handed to the script and the
	// response body it returns. DefaultConfig: 16 MiB.
	MaxBodyBytes int64
	// MaxLogBytes truncates one console message. DefaultConfig: 16 KiB.
	MaxLogBytes int
	// Fetch is the outbound HTTP policy of the fetch global.
	Fetch FetchPolicy
	// Gate, when set, is the CPU gate shared by every Runtime built with
	// this Config (and by CompileWith): at most Gate.Slots() of them run
	// JavaScript at once; calls waiting on fetch or timers hold no slot.
	// Give all of a process's Runtimes the same Gate, e.g.
	// NewGate(0) for GOMAXPROCS slots. nil: no limit.
	Gate *Gate
	// Bindings are objects of Go methods on the entry's env (env.DATA,
	// env.QUEUE): each method returns a promise of its Go result. A
	// binding's name hides an environment variable of the same name.
	// Runtimes of different deployments get different Bindings (the
	// binding knows whose data it reaches). nil: none.
	Bindings map[string]Binding
	// OnLog receives console output. nil: console output is logged at debug
	// level through Logger.
	OnLog func(LogEntry)
	// Logger is for the runtime's own diagnostics. nil: discard.
	Logger *slog.Logger
}

// FetchPolicy limits the fetch global. Only http and https URLs are fetched,
// and only from public unicast addresses: the dialer checks the address it is
// about to connect to, after DNS resolution, so a hostname that resolves to a
// loopback, private, link-local (cloud metadata), CGNAT or otherwise reserved
// address is refused, on redirects too. Environment proxies are ignored.
type FetchPolicy struct {
	// Timeout bounds one fetch (connect, headers and body). DefaultConfig: 10s.
	// The request's own deadline applies as well.
	Timeout time.Duration
	// MaxResponseBytes bounds one fetched body. DefaultConfig: 10 MiB.
	MaxResponseBytes int64
	// MaxRequests bounds the fetches of one Serve or Invoke call.
	// DefaultConfig: 50.
	MaxRequests int
	// Allow lists address ranges exempt from the block list, for an operator's
	// internal APIs or tests (127.0.0.1/32). Empty: none.
	Allow []netip.Prefix
	// Resolver resolves hostnames. nil: net.DefaultResolver.
	Resolver *net.Resolver
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		Timeout:      30 * time.Second,
		HeapMB:       128,
		MaxBodyBytes: 16 << 20,
		MaxLogBytes:  16 << 10,
		Fetch: FetchPolicy{
			Timeout:          10 * time.Second,
			MaxResponseBytes: 10 << 20,
			MaxRequests:      50,
		},
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.HeapMB <= 0 {
		c.HeapMB = d.HeapMB
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxLogBytes <= 0 {
		c.MaxLogBytes = d.MaxLogBytes
	}
	if c.Fetch.Timeout <= 0 {
		c.Fetch.Timeout = d.Fetch.Timeout
	}
	if c.Fetch.MaxResponseBytes <= 0 {
		c.Fetch.MaxResponseBytes = d.Fetch.MaxResponseBytes
	}
	if c.Fetch.MaxRequests <= 0 {
		c.Fetch.MaxRequests = d.Fetch.MaxRequests
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// LogEntry is one console call made by deployment code.
type LogEntry struct {
	RequestID string // "" during New (top-level code)
	Level     string // "log", "info", "warn", "error" or "debug"
	Message   string
	Time      time.Time
}

// Binding is a set of methods server code calls through env.<name>:
// env.DATA.get("k") calls Call(ctx, "get", `["k"]`) on a goroutine of its
// own (the isolate runs other work meanwhile) and resolves the promise to
// the returned JSON (nil: undefined), or rejects it with an Error whose
// message is err's text: Call's errors must be safe to show to the
// deployment's code. ctx ends with the call that made it.
type Binding interface {
	// Methods lists the method names env.<name> has.
	Methods() []string
	Call(ctx context.Context, method string, args json.RawMessage) (json.RawMessage, error)
}

// maxBindingCalls bounds the binding calls of one Serve, Invoke or Call.
const maxBindingCalls = 1000
