package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/edge/isolate"
)

// isolateHooks runs the projects' deployment lifecycle hooks
// (deploy.HookRunner) in V8: each run compiles the hook and starts a fresh
// isolate with no environment (no secrets), under the isolate runtime's
// heap limit and outbound fetch policy, bounded by the run's deadline.
// Console output goes to the deployment's build log.
type isolateHooks struct {
	cfg isolate.Config
}

var (
	_ deploy.HookRunner  = isolateHooks{}
	_ deploy.HookChecker = isolateHooks{}
)

// CheckHook compiles code and runs its top level once, so a syntax error
// is refused when the hook is set, not at the next deployment.
func (h isolateHooks) CheckHook(ctx context.Context, code string) error {
	_, err := isolate.Compile(ctx, "hook.js", []byte(code))
	return err
}

// RunHook calls the hook's handler(ctx) with input and waits for it to
// settle.
func (h isolateHooks) RunHook(ctx context.Context, code string, input json.RawMessage, log io.Writer) error {
	script, err := isolate.Compile(ctx, "hook.js", []byte(code))
	if err != nil {
		return err
	}
	cfg := h.cfg
	if dl, ok := ctx.Deadline(); ok {
		cfg.Timeout = max(time.Until(dl), time.Millisecond)
	}
	cfg.OnLog = func(e isolate.LogEntry) {
		if e.Level == "log" || e.Level == "info" {
			fmt.Fprintln(log, e.Message)
			return
		}
		fmt.Fprintf(log, "[%s] %s\n", e.Level, e.Message)
	}
	rt, err := isolate.New(cfg, script, nil)
	if err != nil {
		return err
	}
	defer rt.Close()
	_, err = rt.Invoke(ctx, input)
	return err
}
