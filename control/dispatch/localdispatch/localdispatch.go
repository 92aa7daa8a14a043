// Package localdispatch is the embedded build runner: each build runs as a
// child process (`pier build --request F --result F`), so a build that
// crashes or hangs never takes control down with it. It is the twin of
// control/dispatch/nomaddispatch, as Nomad's raw_exec is of its docker
// driver.
//
// Imports: jobs. Reached by control/deploy (as a deploy.Dispatcher)
// through main.
package localdispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pierhq/pier/jobs"
)

// Config says how to start the worker.
type Config struct {
	// Command is the worker's argv prefix, e.g. [/usr/bin/pier build
	// --blob-dir /data/blobs]; --request and --result are appended.
	Command []string
	// Env is added to the worker's environment (secrets kept out of argv).
	Env []string
	// TempDir holds the request/result files (0700); default os.TempDir().
	TempDir string
	// Grace is how long the worker gets after the build timeout (upload,
	// cleanup) before it is killed; default 2m.
	Grace  time.Duration
	Logger *slog.Logger
}

// Dispatcher runs builds as child processes.
type Dispatcher struct {
	cfg Config
	log *slog.Logger
}

// New returns a Dispatcher.
func New(cfg Config) *Dispatcher {
	if len(cfg.Command) == 0 {
		panic("localdispatch.New: empty Command")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{cfg: cfg, log: cfg.Logger.With("component", "localdispatch")}
}

// Dispatch runs one build and waits for its result. The worker's stdout
// and stderr (the build log) go to log as they are written.
func (d *Dispatcher) Dispatch(ctx context.Context, req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
	dir, err := os.MkdirTemp(d.cfg.TempDir, "pier-dispatch-")
	if err != nil {
		return nil, fmt.Errorf("dispatch %s: %w", req.DeploymentID, err)
	}
	defer os.RemoveAll(dir)
	reqPath := filepath.Join(dir, "request.json")
	resPath := filepath.Join(dir, "result.json")
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("dispatch %s: %w", req.DeploymentID, err)
	}
	// 0600: the request may carry the repository token.
	if err := os.WriteFile(reqPath, raw, 0o600); err != nil {
		return nil, fmt.Errorf("dispatch %s: %w", req.DeploymentID, err)
	}

	timeout := req.Timeout + d.cfg.Grace
	if req.Timeout <= 0 {
		timeout = 15*time.Minute + d.cfg.Grace
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append(append([]string{}, d.cfg.Command[1:]...), "--request", reqPath, "--result", resPath)
	cmd := exec.CommandContext(cctx, d.cfg.Command[0], args...)
	cmd.Stdout = log
	cmd.Stderr = log
	if len(d.cfg.Env) > 0 {
		cmd.Env = append(os.Environ(), d.cfg.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole process group: the worker and any build it started.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	d.log.Debug("build worker starting", "deployment", req.DeploymentID)
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	raw, err = os.ReadFile(resPath)
	if err != nil {
		if cctx.Err() != nil {
			return &jobs.BuildResult{DeploymentID: req.DeploymentID, Duration: time.Since(start),
				Error: fmt.Sprintf("build timed out after %s", req.Timeout)}, nil
		}
		return nil, fmt.Errorf("build worker for %s exited without a result: %w", req.DeploymentID, errors.Join(runErr, err))
	}
	var res jobs.BuildResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("build worker for %s wrote a bad result: %w", req.DeploymentID, err)
	}
	return &res, nil
}
