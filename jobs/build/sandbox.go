package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Sandbox modes (Config.Sandbox).
const (
	SandboxAuto  = "auto"  // bubblewrap when bwrap is on PATH and works, else none with a warning
	SandboxBwrap = "bwrap" // bubblewrap, or the build fails
	SandboxNone  = "none"  // plain subprocess (trusted code only)
)

// waitDelay bounds how long a killed command's leftover output pipes are
// waited for.
const waitDelay = 5 * time.Second

// sandbox runs build commands, isolated with bubblewrap or not at all.
type sandbox struct {
	bwrap string   // bwrap binary; "" = no sandbox
	hide  []string // absolute, symlink-resolved paths to cover
}

// selectSandbox resolves Config.Sandbox to a sandbox. warn is a line for
// the build log when isolation is weaker than asked for.
func selectSandbox(ctx context.Context, mode, bwrap string, hideDirs []string) (sb *sandbox, warn string, err error) {
	sb = &sandbox{}
	for _, d := range hideDirs {
		if d == "" {
			continue
		}
		p, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		} else {
			continue // nothing there to hide
		}
		sb.hide = append(sb.hide, p)
	}
	switch mode {
	case SandboxNone:
		if len(sb.hide) > 0 {
			warn = "sandbox disabled (sandbox = none): build commands can read every file the builder can, including the Pier data directory"
		} else {
			warn = "sandbox disabled (sandbox = none): build commands run as plain processes"
		}
		return &sandbox{}, warn, nil
	case "", SandboxAuto, SandboxBwrap:
	default:
		return nil, "", fmt.Errorf("unknown sandbox mode %q (want auto, bwrap or none)", mode)
	}
	path, lookErr := exec.LookPath(bwrap)
	if lookErr != nil {
		lookErr = fmt.Errorf("%s not found", bwrap)
	} else {
		lookErr = probeBwrap(ctx, path)
	}
	if lookErr != nil {
		if mode == SandboxBwrap {
			return nil, "", fmt.Errorf("bubblewrap sandbox unavailable: %w", lookErr)
		}
		return &sandbox{}, fmt.Sprintf("bubblewrap is not available (%v), so build commands run WITHOUT a sandbox and can read every file the builder can; install bubblewrap to isolate builds", lookErr), nil
	}
	sb.bwrap = path
	return sb, "", nil
}

// probeBwrap checks that bwrap can create its namespaces here (it cannot
// in some unprivileged containers).
func probeBwrap(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	args := append(bwrapBase(), "--", "/bin/true")
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bwrap does not work here: %w: %s", err, firstLine(out))
	}
	return nil
}

func bwrapBase() []string {
	return []string{
		"--ro-bind", "/", "/",
		"--dev", "/dev",
		"--proc", "/proc",
		"--tmpfs", "/tmp",
		"--unshare-all", "--share-net",
		"--die-with-parent", "--new-session",
	}
}

func (sb *sandbox) name() string {
	if sb.bwrap != "" {
		return "bubblewrap"
	}
	return "none"
}

// command builds the process for one shell command run in dir, with home
// as its private writable HOME and env as its whole environment.
func (sb *sandbox) command(dir, home, script string, env []string) *exec.Cmd {
	var cmd *exec.Cmd
	if sb.bwrap == "" {
		cmd = exec.Command("/bin/sh", "-c", script)
	} else {
		args := bwrapBase()
		for _, h := range sb.hide {
			if fi, err := os.Stat(h); err == nil && fi.IsDir() {
				args = append(args, "--tmpfs", h)
			} else if err == nil {
				args = append(args, "--ro-bind", "/dev/null", h)
			}
		}
		// Writable binds last, so they show through a hidden parent.
		args = append(args,
			"--bind", home, home,
			"--bind", dir, dir,
			"--chdir", dir,
			"--", "/bin/sh", "-c", script)
		cmd = exec.Command(sb.bwrap, args...)
	}
	cmd.Dir = dir
	cmd.Env = env
	return cmd
}

// run starts cmd in its own process group with its output to stdout and
// stderr (one pipe when they are the same writer), and waits for it. When
// ctx ends the whole group is killed (with bwrap, its sandbox dies with
// it); so is anything a finished command left running in the background,
// and its output is drained (for at most waitDelay) before run returns.
func run(ctx context.Context, cmd *exec.Cmd, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	type pipe struct {
		r, w *os.File
		dst  io.Writer
	}
	var pipes []pipe
	newPipe := func(dst io.Writer) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		pipes = append(pipes, pipe{r, w, dst})
		return w, nil
	}
	defer func() {
		for _, p := range pipes {
			p.r.Close()
			p.w.Close()
		}
	}()
	var err error
	if cmd.Stdout, err = newPipe(stdout); err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if stderr != stdout {
		if cmd.Stderr, err = newPipe(stderr); err != nil {
			return err
		}
	}
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	for _, p := range pipes {
		p.w.Close()
	}
	if err != nil {
		return err
	}
	copied := make(chan struct{}, len(pipes))
	for _, p := range pipes {
		go func() {
			io.Copy(p.dst, p.r)
			copied <- struct{}{}
		}()
	}

	// Wait returns as soon as the command's leader exits (its output goes
	// to *os.File pipes, so exec starts no copying goroutine of its own).
	var cause error
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	select {
	case err = <-werr:
	case <-ctx.Done():
		cause = context.Cause(ctx)
		killGroup(cmd)
		err = <-werr
	}
	killGroup(cmd)
	timeout := time.After(waitDelay)
	for range pipes {
		select {
		case <-copied:
		case <-timeout:
			for _, p := range pipes {
				p.r.Close() // a process escaped the group and holds a pipe
			}
			<-copied
		}
	}
	if cause == nil && ctx.Err() != nil {
		cause = context.Cause(ctx)
	}
	if cause != nil {
		return cause
	}
	return err
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}
