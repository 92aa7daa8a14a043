// Package build is Pier's build worker: it clones the exact commit of a
// deployment with the git CLI, detects the framework, runs the install and
// build commands in a sandbox (bubblewrap where present) under one
// timeout, uploads the output content-addressed to the object store and
// writes the deployment's edge.Manifest last, with its server code marked
// (code.go: pier.json, or a _worker.js at the output root).
//
// Everything a build prints, and a progress line per step, streams to
// Config.Log as it happens; the git token never reaches it. Failures come
// back as a jobs.BuildResult with a user-safe Error, never as a panic.
//
// It declares the port it writes through (Uploader), satisfied by
// edge/blob/dirblob and edge/blob/s3blob. Imported by control/cmd/pier
// (the `pier build` worker and the local dispatcher). Imports: jobs, edge,
// the standard library, andybalholm/brotli, x/sync.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/pierhq/pier/jobs"
)

// Uploader is where build outputs go: the object store. Put must be
// atomic (readers never see a partial object).
type Uploader interface {
	Exists(ctx context.Context, key string) (bool, error)
	Put(ctx context.Context, key string, r io.Reader, size int64) error
}

// Config configures the worker.
type Config struct {
	// WorkDir is scratch space; each build gets a fresh subdirectory,
	// removed afterwards. Default: os.TempDir().
	WorkDir string
	// Sandbox is SandboxAuto (default), SandboxBwrap or SandboxNone.
	Sandbox string
	// HideDirs are paths the sandbox makes invisible to build commands
	// (the Pier data dir: keyring, database). Directories are covered by
	// an empty tmpfs, files by /dev/null.
	HideDirs []string
	// Git is the git binary. Default: "git".
	Git string
	// Bwrap is the bubblewrap binary. Default: "bwrap".
	Bwrap string
	// Log receives the build log, line by line as it happens. It never
	// receives the git token. Nil: discarded.
	Log io.Writer
	// Logger is the operator log. Nil: discarded.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults Run applies to zero fields.
func DefaultConfig() Config {
	return Config{WorkDir: os.TempDir(), Sandbox: SandboxAuto, Git: "git", Bwrap: "bwrap"}
}

// DefaultTimeout bounds install plus build when the request sets none.
const DefaultTimeout = 15 * time.Minute

// uploadWorkers bounds concurrent hashing, compression and uploads.
const uploadWorkers = 8

var deploymentID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// errTimeout is the cause of the install+build deadline.
var errTimeout = errors.New("build timed out")

// buildError carries a user-safe message and the internal cause.
type buildError struct {
	msg string
	err error
}

func (e *buildError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// public marks err with a message safe to show the user.
func public(msg string, err error) error { return &buildError{msg: msg, err: err} }

// builder is the state of one build.
type builder struct {
	cfg    Config
	up     Uploader
	req    jobs.BuildRequest
	log    *logWriter
	logger *slog.Logger
	sb     *sandbox
	maxMem int64 // files up to this size are processed in memory

	dir  string // this build's scratch directory
	src  string // the checkout
	home string // HOME of the build commands
	tmp  string // TMPDIR without a sandbox
}

// Run builds req and uploads its output through up. It always returns a
// result; its Error is empty on success and user-safe otherwise (the log
// holds the details).
func Run(ctx context.Context, cfg Config, up Uploader, req jobs.BuildRequest) (res *jobs.BuildResult) {
	start := time.Now()
	res = &jobs.BuildResult{DeploymentID: req.DeploymentID}
	def := DefaultConfig()
	if cfg.WorkDir == "" {
		cfg.WorkDir = def.WorkDir
	}
	if cfg.Sandbox == "" {
		cfg.Sandbox = def.Sandbox
	}
	if cfg.Git == "" {
		cfg.Git = def.Git
	}
	if cfg.Bwrap == "" {
		cfg.Bwrap = def.Bwrap
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if req.Timeout <= 0 {
		req.Timeout = DefaultTimeout
	}
	logger := cfg.Logger.With("component", "build", "deployment", req.DeploymentID)
	b := &builder{
		cfg:    cfg,
		up:     up,
		req:    req,
		log:    newLogWriter(cfg.Log, logger, logSecrets(req)...),
		logger: logger,
		maxMem: maxInMemory,
	}
	defer func() { res.Duration = time.Since(start) }()
	defer func() {
		if p := recover(); p != nil {
			logger.Error("build panicked", "panic", p, "stack", string(debug.Stack()))
			res.Error = "internal error"
			res.ManifestKey = ""
			b.log.Printf("==> error: internal error")
		}
	}()

	err := b.build(ctx, res)
	if err == nil {
		b.log.Printf("==> Deployed %d files (%s, %d new blobs) in %s", res.Files, size(res.Bytes), res.Uploaded, time.Since(start).Round(time.Millisecond))
		logger.Info("build succeeded", "commit", res.CommitSHA, "framework", res.Framework, "files", res.Files, "uploaded", res.Uploaded)
		return res
	}
	res.Error = b.userMessage(ctx, err)
	b.log.Printf("==> error: %s", res.Error)
	logger.Warn("build failed", "reason", res.Error, "err", string(b.log.redact([]byte(err.Error()))))
	return res
}

func (b *builder) userMessage(ctx context.Context, err error) string {
	var be *buildError
	switch {
	case errors.Is(err, errTimeout):
		return fmt.Sprintf("build timed out after %s", b.req.Timeout)
	case errors.As(err, &be):
		return be.msg
	case ctx.Err() != nil:
		return "build canceled"
	default:
		return "internal error"
	}
}

func (b *builder) build(ctx context.Context, res *jobs.BuildResult) error {
	if err := b.checkRequest(); err != nil {
		return err
	}
	sb, warn, err := selectSandbox(ctx, b.cfg.Sandbox, b.cfg.Bwrap, b.cfg.HideDirs)
	if err != nil {
		return public(err.Error(), err)
	}
	b.sb = sb
	if warn != "" {
		b.log.Printf("==> warning: %s", warn)
		b.logger.Warn(warn)
	}
	if err := b.mkdirs(); err != nil {
		return err
	}
	defer b.cleanup()

	// Clone, with its own deadline of the same length.
	cctx, cancel := context.WithTimeoutCause(ctx, b.req.Timeout, errCloneTimeout)
	sha, err := b.clone(cctx)
	cancel()
	if errors.Is(err, errCloneTimeout) {
		return public(fmt.Sprintf("clone timed out after %s", b.req.Timeout), err)
	}
	if err != nil {
		return err
	}
	res.CommitSHA = sha
	b.log.Printf("==> Checked out commit %s", sha)

	plan, err := b.plan()
	if err != nil {
		return err
	}
	res.Framework = plan.Framework

	// Install then build, under one shared deadline.
	bctx, cancel := context.WithTimeoutCause(ctx, b.req.Timeout, errTimeout)
	defer cancel()
	if plan.InstallCommand != "" {
		if err := b.step(bctx, "install", plan.InstallCommand, plan.Framework); err != nil {
			return err
		}
	}
	if plan.BuildCommand != "" {
		if err := b.step(bctx, "build", plan.BuildCommand, plan.Framework); err != nil {
			return err
		}
	}
	cancel()

	return b.publish(ctx, plan, res)
}

var errCloneTimeout = errors.New("clone timed out")

func (b *builder) checkRequest() error {
	r := b.req
	if !deploymentID.MatchString(r.DeploymentID) {
		return public("invalid deployment id", fmt.Errorf("deployment id %q", r.DeploymentID))
	}
	if b.up == nil {
		return errors.New("no uploader configured")
	}
	for k, v := range r.Env {
		if !envName.MatchString(k) || strings.ContainsRune(v, 0) {
			return public(fmt.Sprintf("invalid build environment variable %q", k), errors.New("bad env"))
		}
	}
	return nil
}

func (b *builder) mkdirs() error {
	work, err := filepath.Abs(b.cfg.WorkDir)
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	if b.dir, err = os.MkdirTemp(work, "build-"+b.req.DeploymentID+"-"); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	if r, err := filepath.EvalSymlinks(b.dir); err == nil {
		b.dir = r // bwrap binds need real paths
	}
	b.src = filepath.Join(b.dir, "src")
	b.home = filepath.Join(b.dir, "home")
	b.tmp = filepath.Join(b.dir, "tmp")
	for _, d := range []string{b.home, b.tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
	}
	return nil
}

func (b *builder) cleanup() {
	if b.dir == "" {
		return
	}
	if err := os.RemoveAll(b.dir); err != nil {
		// Read-only folders (some npm packages ship them): make them
		// writable and retry.
		filepath.WalkDir(b.dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		if err := os.RemoveAll(b.dir); err != nil {
			b.logger.Warn("could not remove build directory", "dir", b.dir, "err", err)
		}
	}
}

// plan resolves what to run: the project's framework (or detection), then
// its explicit commands and output directory on top.
func (b *builder) plan() (Plan, error) {
	r := b.req
	var plan Plan
	var err error
	how := "detected"
	if r.Framework == "" || r.Framework == "auto" {
		plan, err = Detect(b.src)
	} else {
		how = "configured"
		plan, err = PlanFor(b.src, r.Framework)
	}
	switch {
	case errors.Is(err, ErrNotDetected) && r.OutputDir != "":
		plan, err = Plan{Framework: FrameworkOther}, nil
		how = "custom"
	case errors.Is(err, ErrNotDetected):
		return Plan{}, public(ErrNotDetected.Error(), err)
	case err != nil:
		return Plan{}, public(err.Error(), err)
	}
	if r.InstallCommand != "" {
		plan.InstallCommand = r.InstallCommand
	}
	if r.BuildCommand != "" {
		plan.BuildCommand = r.BuildCommand
	}
	if r.OutputDir != "" {
		plan.OutputDir = r.OutputDir
	}
	b.log.Printf("==> Framework: %s (%s)", plan.Framework, how)
	b.log.Printf("==> Install command: %s", orNone(plan.InstallCommand))
	b.log.Printf("==> Build command: %s", orNone(plan.BuildCommand))
	b.log.Printf("==> Output directory: %s", plan.OutputDir)
	for _, n := range plan.Notes {
		b.log.Printf("==> note: %s", n)
	}
	return plan, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// step runs one command in the sandbox, streaming its output.
func (b *builder) step(ctx context.Context, name, command, framework string) error {
	b.log.Printf("==> Running %s (sandbox: %s): %s", name, b.sb.name(), command)
	start := time.Now()
	cmd := b.sb.command(b.src, b.home, command, b.commandEnv(name == "build" && nodeFramework(framework)))
	err := run(ctx, cmd, b.log, b.log)
	b.log.Flush()
	if err != nil {
		if errors.Is(err, errTimeout) || ctx.Err() != nil {
			return err
		}
		return public(name+" failed: "+exitString(err), fmt.Errorf("%s: %w", name, err))
	}
	b.log.Printf("==> %s finished in %s", name, time.Since(start).Round(time.Millisecond))
	return nil
}

func exitString(err error) string {
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return err.Error() // "exit status 1", "signal: killed"
	}
	return "could not start the command"
}

// baseEnv is what every child process gets: a PATH, a private HOME, a
// UTF-8 locale and the builder's proxy settings.
func (b *builder) baseEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path, "HOME=" + b.home}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// commandEnv is the clean environment of the install and build commands:
// the base, CI markers, telemetry off, NODE_ENV=production for a node
// build step, then the request's build-scoped variables on top.
func (b *builder) commandEnv(nodeBuild bool) []string {
	m := map[string]string{
		"CI":                         "1",
		"LANG":                       "C.UTF-8",
		"NEXT_TELEMETRY_DISABLED":    "1",
		"ASTRO_TELEMETRY_DISABLED":   "1",
		"DO_NOT_TRACK":               "1",
		"NPM_CONFIG_UPDATE_NOTIFIER": "false",
		"TMPDIR":                     "/tmp",
	}
	if b.sb.bwrap == "" {
		m["TMPDIR"] = b.tmp
	}
	if nodeBuild {
		m["NODE_ENV"] = "production"
	}
	for _, kv := range b.baseEnv() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	maps.Copy(m, b.req.Env)
	env := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		env = append(env, k+"="+m[k])
	}
	return env
}

// size formats a byte count for the log.
func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
