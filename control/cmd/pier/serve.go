package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/control/api"
	"github.com/pierhq/pier/control/config"
	"github.com/pierhq/pier/control/controld"
	"github.com/pierhq/pier/control/data"
	"github.com/pierhq/pier/control/deploy"
	"github.com/pierhq/pier/control/github/ghstatus"
	"github.com/pierhq/pier/control/queue"
	"github.com/pierhq/pier/control/schedule"
	ctelemetry "github.com/pierhq/pier/control/telemetry"
	"github.com/pierhq/pier/edge"
	"github.com/pierhq/pier/edge/coord"
	"github.com/pierhq/pier/edge/databind"
	"github.com/pierhq/pier/edge/edged"
	"github.com/pierhq/pier/edge/functions"
	"github.com/pierhq/pier/edge/isolate"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "Run Pier's roles (control, edge) on the backends the config selects: a section\n"+
		"left out means the embedded twin (see docs/configuration.md).", stderr)
	path := fs.String("config", "", "HCL config file (PIER_* variables override it)")
	roles := fs.String("roles", "", "comma-separated roles to run, overriding the config: control, edge")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil {
		return err
	}
	if *roles != "" {
		cfg.Roles = strings.Split(*roles, ",")
	}
	rt, err := cfg.Runtime()
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger, err := newLogger(stderr, rt.LogLevel)
	if err != nil {
		return err
	}
	return serve(ctx, rt, serveOptions{edges: 1, stdout: stdout}, logger)
}

type serveOptions struct {
	edges  int  // edges run in this process (dev runs several)
	dev    bool // dev token file, dev.json and the banner
	stdout io.Writer
}

// serve runs the roles rt selects until ctx ends.
func serve(ctx context.Context, rt *config.Runtime, opts serveOptions, logger *slog.Logger) error {
	b, err := openBackends(ctx, rt, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	ccfg := coord.DefaultConfig()
	ccfg.Logger = logger
	coordinator := coord.New(ccfg, b.kv)

	// One CPU gate for every isolate of the process: the edges' SSR, the
	// functions API and the deployment hooks compete for the same cores.
	gate := isolate.NewGate(0)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, opts.edges+1)
	defer wg.Wait()
	defer cancel()

	// Edges first: in one process, control's first promotion should find
	// them registered.
	var edges []*edged.Server
	var etls *edgeTLS
	tel, err := newEdgeTelemetry(rt, logger)
	if err != nil {
		return err
	}
	// env.DATA: every edge calls control's API with the telemetry token
	// (the same path when control runs in this process).
	dataClient := databind.New(rt.Edge.ControlURL, rt.Edge.TelemetryToken, nil)
	if rt.RunControl && rt.Edge.ControlURL == "" {
		dataClient = databind.New("", tel.controlToken, nil) // URL: once control listens
	}
	runToken := rt.Edge.TelemetryToken // control runs scheduled functions with it
	if rt.RunControl && rt.Edge.ControlURL == "" {
		runToken = tel.controlToken
	}
	bindings := func(deploymentID string) map[string]isolate.Binding {
		return map[string]isolate.Binding{"DATA": dataClient.For(deploymentID), "QUEUE": dataClient.Queue(deploymentID)}
	}
	if rt.RunEdge {
		if etls, err = newEdgeTLS(rt, b); err != nil {
			return err
		}
		wg.Add(1)
		go func() { // every edge of the process routes the same verified domains
			defer wg.Done()
			_ = coordinator.WatchDomains(ctx, etls.table.Set)
		}()
		for i := range opts.edges {
			id, cache := rt.Edge.ID, rt.Edge.CacheDir
			if opts.edges > 1 {
				id = fmt.Sprintf("%s-%d", rt.Edge.ID, i+1)
				cache = filepath.Join(rt.DataDir, "edges", id)
			}
			addr, err := nthAddr(rt.Edge.Listen, i)
			if err != nil {
				return err
			}
			var ec edged.Coordinator = coordinator
			if b.consul != nil {
				ec = consulEdge{Coordinator: coordinator, store: b.consul, cfg: ccfg}
				defer func() {
					dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					if err := b.consul.DeregisterEdge(dctx, id); err != nil {
						logger.Warn("deregister edge from consul", "edge", id, "err", err)
					}
				}()
			}
			edeps := edged.Deps{Coord: ec, Blobs: b.blobs, Env: runtimeEnv(b.blobs, b.sealer), Hosts: etls.table, Bindings: bindings}
			var httpsAddr string
			if rt.Edge.HTTPSListen != "" {
				if httpsAddr, err = nthAddr(rt.Edge.HTTPSListen, i); err != nil {
					return err
				}
				m, err := etls.manager(rt, addr, httpsAddr, logger)
				if err != nil {
					return err
				}
				defer m.Close()
				edeps.TLS = m
			}
			if err := tel.attach(id, &edeps); err != nil {
				return err
			}
			e, err := edged.New(edged.Config{ID: id, Addr: addr, HTTPSAddr: httpsAddr, BaseDomain: rt.Control.BaseDomain, CacheDir: cache, Logger: logger,
				Isolates: isolatesConfig(rt, gate), RunToken: runToken}, edeps)
			if err != nil {
				return err
			}
			edges = append(edges, e)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
					errc <- fmt.Errorf("edge %s: %w", id, err)
				}
			}()
		}
		for _, e := range edges {
			select {
			case <-e.Ready():
			case err := <-errc:
				return err
			case <-ctx.Done():
				return nil
			}
		}
	}

	var apiURL, token string
	if rt.RunControl {
		edgePort := rt.Control.EdgePort
		if edgePort == "" && len(edges) > 0 && rt.Control.EdgeScheme == "http" {
			_, edgePort, _ = net.SplitHostPort(edges[0].Addr())
			if edgePort == "80" {
				edgePort = ""
			}
		}
		dcfg := deploy.DefaultConfig()
		dcfg.BuildTimeout = rt.BuildTimeout
		dcfg.Workers = rt.Control.Workers
		dcfg.Logger = logger
		dcfg.BaseDomain, dcfg.EdgeScheme, dcfg.EdgePort = rt.Control.BaseDomain, rt.Control.EdgeScheme, edgePort
		dcfg.FlatHosts = rt.FlatHosts()
		// Commit statuses on GitHub (control.github_api_url: GitHub
		// Enterprise, or a test server).
		gh, err := ghstatus.New(ghstatus.Config{BaseURL: rt.Control.GitHubAPIURL, Logger: logger})
		if err != nil {
			return err
		}
		svc := deploy.New(dcfg, deploy.Deps{Store: b.store, Dispatcher: b.dispatcher,
			Router: router{c: coordinator, readyTimeout: rt.ReadyTimeout, drain: rt.Control.DrainUnready},
			Sealer: b.sealer, Blobs: b.blobs, Status: gh, Hooks: isolateHooks{cfg: isolatesConfig(rt, gate).Runtime}})
		if opts.dev {
			// One process: no other worker can hold a claim.
			if err := svc.RecoverOnStart(ctx); err != nil {
				logger.Warn("recover builds from the last run", "err", err)
			}
			if token, err = devToken(ctx, b.store, filepath.Join(rt.DataDir, "dev-token")); err != nil {
				return err
			}
		} else if err := bootstrapToken(ctx, b.store, rt.BootstrapToken, logger); err != nil {
			return err
		}
		doms, err := newDomains(rt, b.store, coordinator, logger)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = doms.Run(ctx, time.Minute)
		}()
		tcfg := ctelemetry.DefaultConfig()
		tcfg.Retention, tcfg.Logger = rt.TelemetryRetention, logger
		tsvc := ctelemetry.New(tcfg, b.store)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = tsvc.Run(ctx)
		}()
		dsvc := data.New(data.Config{Logger: logger}, b.store)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = dsvc.Run(ctx)
		}()
		host, _ := os.Hostname()
		runner := &schedule.EdgeRunner{Token: tel.controlToken, Edges: func(ctx context.Context) ([]string, error) {
			es, err := coordinator.Edges(ctx)
			addrs := make([]string, 0, len(es))
			for _, e := range es {
				addrs = append(addrs, e.Addr)
			}
			return addrs, err
		}}
		manifests := newManifestReader(b.blobs) // shared: both read the live deployments' manifests
		scfg, periodic, err := scheduleTimer(rt, b)
		if err != nil {
			return err
		}
		scfg.ID, scfg.Logger = fmt.Sprintf("%s-%d", host, os.Getpid()), logger
		sched := schedule.New(scfg, schedule.Deps{
			Projects: svc, Manifests: manifests, Leader: coordinator, Store: b.store, Runner: runner, Periodic: periodic,
		})
		queues := queue.New(queue.Config{ID: fmt.Sprintf("%s-%d", host, os.Getpid()), Logger: logger}, queue.Deps{
			Projects: svc, Manifests: manifests, Leader: coordinator, Store: b.store, Runner: runner,
		})
		wg.Add(2)
		go func() {
			defer wg.Done()
			_ = sched.Run(ctx)
		}()
		go func() {
			defer wg.Done()
			_ = queues.Run(ctx)
		}()
		apiSrv := api.New(api.Config{BaseDomain: rt.Control.BaseDomain, FlatHosts: rt.FlatHosts(), EdgeScheme: rt.Control.EdgeScheme, EdgePort: edgePort,
			TelemetryToken: tel.controlToken, Logger: logger},
			api.Deps{Deploy: svc, Tokens: b.store, Domains: doms, Telemetry: tsvc, Data: dsvc, Schedules: sched, Queues: queues})
		ln, err := net.Listen("tcp", rt.Control.Listen)
		if err != nil {
			return fmt.Errorf("control listen: %w", err)
		}
		apiURL = "http://" + ln.Addr().String()
		tel.local(tsvc)
		if rt.Edge.ControlURL == "" {
			dataClient.SetURL(apiURL)
		}
		ctl := controld.New(controld.Config{Logger: logger}, controld.Deps{API: withDashboard(apiSrv, logger), Deploy: svc})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ctl.Run(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("control: %w", err)
			}
		}()
	}

	var functionsURL string
	if rt.RunControl && rt.Control.FunctionsListen != "" {
		fcfg := functions.DefaultConfig()
		fcfg.Runtime = isolatesConfig(rt, gate).Runtime
		fcfg.Token = token
		if fcfg.Token == "" {
			fcfg.Token = rt.BootstrapToken
		}
		if fcfg.Token == "" {
			return fmt.Errorf("control.functions_listen needs a bootstrap_token: the functions API is never served without auth")
		}
		fcfg.Logger = logger
		fn := functions.New(fcfg)
		defer fn.Close()
		ln, err := net.Listen("tcp", rt.Control.FunctionsListen)
		if err != nil {
			return fmt.Errorf("functions listen: %w", err)
		}
		functionsURL = "http://" + ln.Addr().String()
		srv := &http.Server{Handler: fn, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(2)
		go func() {
			defer wg.Done()
			fn.Run(ctx)
		}()
		go func() {
			defer wg.Done()
			go func() { <-ctx.Done(); srv.Close() }()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("functions api: %w", err)
			}
		}()
	}

	tel.run(ctx, &wg)

	if opts.dev {
		info := DevInfo{APIURL: apiURL, DashboardURL: apiURL + "/ui/", FunctionsURL: functionsURL, BaseDomain: rt.Control.BaseDomain, Token: token, DataDir: rt.DataDir, PID: os.Getpid()}
		for _, e := range edges {
			info.EdgeURLs = append(info.EdgeURLs, "http://"+e.Addr())
			if a := e.HTTPSAddr(); a != "" {
				info.EdgeHTTPSURLs = append(info.EdgeHTTPSURLs, "https://"+a)
			}
		}
		if err := writeJSON(filepath.Join(rt.DataDir, "dev.json"), info); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(rt.DataDir, "dev.json"))
		_, port, _ := net.SplitHostPort(edges[0].Addr())
		printBanner(opts.stdout, info, port)
	} else {
		logger.Info("pier serving", "control", rt.RunControl, "edge", rt.RunEdge, "api", apiURL)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	wg.Wait()
	logger.Info("stopped")
	return runErr
}

// bootstrapToken makes sure the configured bootstrap token exists, so a
// fresh production install has one admin token (PIER_BOOTSTRAP_TOKEN).
func bootstrapToken(ctx context.Context, store control.Store, secret string, logger *slog.Logger) error {
	if secret == "" {
		ts, err := store.ListTokens(ctx)
		if err != nil {
			return err
		}
		if len(ts) == 0 {
			logger.Warn("no API tokens exist: set bootstrap_token (or PIER_BOOTSTRAP_TOKEN) to create the first admin token")
		}
		return nil
	}
	if len(secret) < 24 {
		return fmt.Errorf("bootstrap_token: use at least 24 random characters")
	}
	if _, err := store.TokenByHash(ctx, api.HashToken(secret)); err == nil {
		return nil
	} else if !errors.Is(err, control.ErrNotFound) {
		return err
	}
	_, tok := api.NewToken("bootstrap", control.ScopeAdmin)
	tok.Hash = api.HashToken(secret)
	return store.CreateToken(ctx, tok)
}

// isolatesConfig maps the edge settings onto the isolate runtime's, with
// the process's CPU gate.
func isolatesConfig(rt *config.Runtime, gate *isolate.Gate) edged.IsolatesConfig {
	rc := isolate.DefaultConfig()
	rc.Gate = gate
	rc.Timeout = rt.IsolateTimeout
	if rt.Edge.IsolateHeapMB > 0 {
		rc.HeapMB = rt.Edge.IsolateHeapMB
	}
	return edged.IsolatesConfig{Runtime: rc, Capacity: rt.Edge.IsolateCapacity, MinWarm: rt.Edge.MinWarm}
}

// runtimeEnv gives an edge's isolates their deployment's runtime-scoped
// variables: control writes them sealed to the object store
// (deploy.RuntimeEnvKey) when the deployment is ready; the edge opens them
// with the secrets backend (in production a Vault token that may only
// decrypt: vault/pier-edge.hcl). No document means no variables. A
// deployment's variables are frozen, so each is read and opened once per
// process, not on every isolate cold start.
func runtimeEnv(blobs blobStore, sealer deploy.Sealer) func(context.Context, string) (map[string]string, error) {
	var (
		mu     sync.Mutex
		opened = map[string]map[string]string{}
	)
	return func(ctx context.Context, deploymentID string) (map[string]string, error) {
		mu.Lock()
		env, ok := opened[deploymentID]
		mu.Unlock()
		if ok {
			return env, nil
		}
		env, found, err := openRuntimeEnv(ctx, blobs, sealer, deploymentID)
		if err != nil || !found {
			// Not cached when absent: control writes the document as the
			// deployment becomes ready, which a lazily loaded deployment
			// host can precede.
			return env, err
		}
		mu.Lock()
		opened[deploymentID] = env
		mu.Unlock()
		return env, nil
	}
}

func openRuntimeEnv(ctx context.Context, blobs blobStore, sealer deploy.Sealer, deploymentID string) (env map[string]string, found bool, err error) {
	rc, err := blobs.Get(ctx, deploy.RuntimeEnvKey(deploymentID))
	if errors.Is(err, edge.ErrNotExist) {
		return map[string]string{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("runtime env of %s: %w", deploymentID, err)
	}
	defer rc.Close()
	var doc deploy.RuntimeEnvDoc
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&doc); err != nil {
		return nil, false, fmt.Errorf("runtime env of %s: %w", deploymentID, err)
	}
	env = make(map[string]string, len(doc.Env))
	for name, sealed := range doc.Env {
		v, err := sealer.Unseal(ctx, sealed)
		if err != nil {
			return nil, false, fmt.Errorf("runtime env of %s: open %s: %w", deploymentID, name, err)
		}
		env[name] = string(v)
	}
	return env, true, nil
}

// manifestReader reads deployments' manifests from the object store (the
// scheduler's schedule.Manifests).
// manifestReader reads deployment manifests from the object store for the
// scheduler and the queue dispatcher, and keeps them: a manifest never
// changes once written (a deployment is immutable).
type manifestReader struct {
	blobs blobStore
	mu    sync.Mutex
	cache map[string]*edge.Manifest // by deployment ID
}

func newManifestReader(b blobStore) *manifestReader {
	return &manifestReader{blobs: b, cache: map[string]*edge.Manifest{}}
}

func (r *manifestReader) Manifest(ctx context.Context, deploymentID string) (*edge.Manifest, error) {
	r.mu.Lock()
	m := r.cache[deploymentID]
	r.mu.Unlock()
	if m != nil {
		return m, nil
	}
	rc, err := r.blobs.Get(ctx, edge.ManifestKey(deploymentID))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	m = &edge.Manifest{}
	if err := json.NewDecoder(io.LimitReader(rc, 64<<20)).Decode(m); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", deploymentID, err)
	}
	r.mu.Lock()
	if len(r.cache) >= 10_000 {
		clear(r.cache)
	}
	r.cache[deploymentID] = m
	r.mu.Unlock()
	return m, nil
}
