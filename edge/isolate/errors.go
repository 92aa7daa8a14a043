package isolate

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrTimeout is matched (errors.Is) by the *TimeoutError of a call that
	// ran past its deadline. The Runtime stays usable.
	ErrTimeout = errors.New("execution timeout")
	// ErrHeapLimit is returned when the script reached the heap limit. The
	// Runtime replaces its isolate before the next call (a cold start).
	ErrHeapLimit = errors.New("script exceeded the memory limit")
	// ErrClosed is returned by calls on a closed Runtime.
	ErrClosed = errors.New("runtime closed")
	// ErrNoEntry is returned by Serve when the script has no default export
	// with a fetch method, and by Invoke when it defines no handler.
	ErrNoEntry = errors.New("script has no matching entry point")
	// ErrBodyTooLarge is returned when a request or response body exceeds
	// Config.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("body too large")
)

// TimeoutError is the error of a call stopped at its deadline. Its text
// follows the functions API of the seed: "Execution timeout (30s)".
type TimeoutError struct {
	Limit time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("Execution timeout (%s)", e.Limit.Round(time.Millisecond))
}

// Is reports whether target is ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// ScriptError is an exception thrown (or a promise rejected) by deployment
// code, or a script that cannot be compiled. Message is the script's own
// text: show it to the deployment's owner (logs), not to its visitors.
type ScriptError struct {
	Message string // e.g. "TypeError: x is not a function"
	Stack   string // JS stack trace, when V8 has one
}

func (e *ScriptError) Error() string { return "script error: " + e.Message }
