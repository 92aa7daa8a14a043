// Command pier is the one Pier binary: `pier dev` runs the whole platform
// in one process on the embedded defaults; `pier build` is the build
// worker that control (or a Nomad job) starts for each build.
//
// This package is the composition root: it parses flags and environment,
// builds the adapters, and wires them into the roles. It holds no logic of
// its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `pier — a self-hostable serverless deployment platform

Usage:
  pier <command> [flags]

Server commands:
  dev       run control, an edge and the builder in one process on embedded
            defaults (SQLite, local disk, local keyring, single-node raft)
  serve     run the control and/or edge roles from a config file on the
            production backends it selects (PostgreSQL, S3, Vault, Consul,
            Nomad); sections left out fall back to the embedded twins
  build     run one build (started by control or by a Nomad job)
  version   print the version

Developer commands (they call a running control's API):
  login     save the API URL and a token (checked) for the other commands
  logout    forget the saved login
  whoami    show the API and the token in use
  init      detect the framework, write pier.json, create the project
  deploy    deploy a local directory as it is (no build): only files the
            server lacks are sent; prints the URL; --watch live-syncs a sandbox
  sync      pier deploy --watch: live sync of this directory to sandbox:<you>
  logs      a deployment's build log, or a project's runtime logs
            (--project); --follow streams them live
  ls        list projects, or a project's deployments
  env       set, list or remove environment variables (values write-only)
  domains   add, list, verify or remove custom domains (the DNS records
            to set are printed; a failed verification says why)
  promote   make a ready deployment live in production
  rollback  put an earlier deployment back live, without a rebuild
  open      print (or open) the project's or a stage's URL

Run 'pier <command> -h' for a command's flags. Every flag can also be set
through the environment as PIER_<FLAG> (e.g. PIER_DATA_DIR).
`

func main() {
	tuneSysmon(os.Args[1:]) // sysmon.go: may re-execute the process
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "dev":
		err = runDev(ctx, args[1:], stdout, stderr)
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "build":
		err = runBuild(ctx, args[1:], stdout, stderr)
	case "deploy":
		err = runDeploy(ctx, args[1:], stdout, stderr)
	case "logs":
		err = runLogs(ctx, args[1:], stdout, stderr)
	case "sync":
		err = runDeploy(ctx, append([]string{"--watch"}, args[1:]...), stdout, stderr)
	case "login":
		err = runLogin(ctx, args[1:], os.Stdin, stdout, stderr)
	case "logout":
		err = runLogout(ctx, args[1:], stdout, stderr)
	case "whoami":
		err = runWhoami(ctx, args[1:], stdout, stderr)
	case "init":
		err = runInit(ctx, args[1:], stdout, stderr)
	case "ls":
		err = runLs(ctx, args[1:], stdout, stderr)
	case "env":
		err = runEnv(ctx, args[1:], os.Stdin, stdout, stderr)
	case "domains", "domain":
		err = runDomains(ctx, args[1:], stdout, stderr)
	case "promote":
		err = runPromote(ctx, args[1:], stdout, stderr)
	case "rollback":
		err = runRollback(ctx, args[1:], stdout, stderr)
	case "open":
		err = runOpen(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "pier", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "pier: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "pier %s: %v\n", args[0], err)
		return 1
	}
}

var errUsage = errors.New("usage")

// newFlagSet returns a FlagSet whose flags default from PIER_* variables.
func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pier %s [flags]\n\n%s\n\nFlags (each also settable as PIER_<NAME>):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, then fills every flag not given on the command line
// from its PIER_<NAME> environment variable.
func parse(fs *flag.FlagSet, args []string) error { return parseN(fs, args, 0) }

// parseN is parse for commands that take up to n positional arguments.
func parseN(fs *flag.FlagSet, args []string, n int) error {
	// Flags may come before, between or after the positional arguments
	// (pier domains add www.example.com --project shop); after "--" every
	// argument is positional (pier env set NAME -- -value).
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if used := len(rest) - len(left); used > 0 && rest[used-1] == "--" {
			pos = append(pos, left...)
			break
		}
		pos = append(pos, left[0])
		rest = left[1:]
	}
	_ = fs.Parse(append([]string{"--"}, pos...)) // only sets fs.Args
	if fs.NArg() > n {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(n))
		fs.Usage()
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "PIER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
