package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/api"
	"github.com/pierhq/pier/control/config"
)

// DevInfo is written to <data-dir>/dev.json once `pier dev` is serving, for
// scripts and tests that started it with random ports.
type DevInfo struct {
	APIURL       string   `json:"api_url"`
	DashboardURL string   `json:"dashboard_url,omitempty"`
	FunctionsURL string   `json:"functions_url,omitempty"`
	EdgeURLs     []string `json:"edge_urls"`
	BaseDomain   string   `json:"base_domain"`
	Token        string   `json:"token"`
	DataDir      string   `json:"data_dir"`
	PID          int      `json:"pid"`

	// EdgeHTTPSURLs are the edges' HTTPS listeners (--https-addr).
	EdgeHTTPSURLs []string `json:"edge_https_urls,omitempty"`
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "pier")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "pier")
	}
	return ".pier"
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", "Run the whole platform in one process on embedded defaults: control (REST API),\n"+
		"edges, and a sandboxed local builder, with SQLite metadata, a local-disk object store,\n"+
		"a local keyring and single-node raft coordination, all in the data dir.", stderr)
	dataDir := fs.String("data-dir", defaultDataDir(), "where all state lives (survives restarts)")
	apiAddr := fs.String("api-addr", "127.0.0.1:7070", "control API listen address (port 0: any free port)")
	edgeAddr := fs.String("edge-addr", "127.0.0.1:8080", "first edge's listen address; further edges take the next ports (port 0: any free port)")
	edges := fs.Int("edges", 1, "number of edges to run")
	functionsAddr := fs.String("functions-addr", "127.0.0.1:8787", "functions API listen address (POST /deploy, /invoke/{id}; \"\" turns it off)")
	baseDomain := fs.String("base-domain", "localhost", "projects are served at <project>.<base-domain>")
	hostStyle := fs.String("host-style", "", "deployment, stage and preview hosts: nested (<label>.<project>.<base-domain>) or flat\n(<label>--<project>.<base-domain>, covered by a *.<base-domain> certificate); default flat with --wildcard-cert, else nested")
	sandbox := fs.String("sandbox", "auto", "build sandbox: auto (bubblewrap when installed), bwrap, or none")
	buildTimeout := fs.Duration("build-timeout", 15*time.Minute, "time limit for install + build")
	workers := fs.Int("workers", 2, "concurrent builds")
	isolateTimeout := fs.Duration("isolate-timeout", 30*time.Second, "per-request time limit of SSR and functions")
	githubAPI := fs.String("github-api-url", "", "where commit statuses go (default api.github.com; GitHub Enterprise: https://<host>/api/v3/)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	tlsFlags := addTLSFlags(fs)
	telemetryBuffer := fs.Int("telemetry-buffer", 10000, "runtime log records each edge holds between shipments to control (more are dropped and counted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *edges < 1 || *edges > 16 {
		return fmt.Errorf("--edges must be between 1 and 16")
	}
	// The dev overlay: the same Runtime a config file produces, with every
	// backend left to its embedded twin.
	cfg := &config.Config{
		DataDir:  *dataDir,
		LogLevel: *logLevel,
		Control: &config.Control{Listen: *apiAddr, BaseDomain: *baseDomain, HostStyle: *hostStyle, Workers: *workers,
			BuildTimeout: buildTimeout.String(), Sandbox: *sandbox, FunctionsListen: *functionsAddr, GitHubAPIURL: *githubAPI},
		Edge: &config.Edge{ID: "edge", Listen: *edgeAddr, IsolateTimeout: isolateTimeout.String(), TelemetryBuffer: *telemetryBuffer},
	}
	tlsFlags.apply(cfg)
	rt, err := cfg.Runtime()
	if err != nil {
		return fmt.Errorf("invalid flags:\n%w", err)
	}
	logger, err := newLogger(stderr, rt.LogLevel)
	if err != nil {
		return err
	}
	if *edges == 1 {
		rt.Edge.ID = "edge-1"
		rt.Edge.CacheDir = filepath.Join(rt.DataDir, "edges", "edge-1")
	}
	return serve(ctx, rt, serveOptions{edges: *edges, dev: true, stdout: stdout}, logger)
}

// nthAddr returns addr with its port increased by n (port 0 stays 0).
func nthAddr(addr string, n int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil {
		return "", fmt.Errorf("address %q: bad port", addr)
	}
	if p == 0 {
		return addr, nil
	}
	return net.JoinHostPort(host, fmt.Sprint(p+n)), nil
}

// devToken returns the dev admin token, creating it on first start. Like
// `vault server -dev`'s root token, its secret is kept in a 0600 file in
// the data dir; the store holds only its hash.
func devToken(ctx context.Context, store control.Store, path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		secret := strings.TrimSpace(string(raw))
		if _, err := store.TokenByHash(ctx, api.HashToken(secret)); err == nil {
			return secret, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	secret, tok := api.NewToken("dev", control.ScopeAdmin)
	if err := store.CreateToken(ctx, tok); err != nil {
		return "", fmt.Errorf("create dev token: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return secret, nil
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printBanner(w io.Writer, info DevInfo, edgePort string) {
	fmt.Fprintf(w, `
Pier is running (dev mode, data in %s)

  API:        %s
  Dashboard:  %s/ui/
  Edges:      %s
  Functions:  %s
  Token:      %s

Projects are served at http://<project>.%s:%s/

Try it:
  export PIER_TOKEN=%s
  curl -s -H "Authorization: Bearer $PIER_TOKEN" -d '{"name":"hello","repo_url":"https://github.com/you/site.git"}' %s/v1/projects
  curl -s -H "Authorization: Bearer $PIER_TOKEN" -d '{}' %s/v1/projects/hello/deployments
  curl -s http://hello.%s:%s/

`, info.DataDir, info.APIURL, info.APIURL, strings.Join(info.EdgeURLs, " "), info.FunctionsURL, info.Token, info.BaseDomain, edgePort,
		info.Token, info.APIURL, info.APIURL, info.BaseDomain, edgePort)
}
