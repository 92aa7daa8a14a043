package nomaddispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/pierhq/pier/jobs"
)

// Config says which Nomad cluster runs builds and how.
type Config struct {
	// Address of a Nomad agent's HTTP API, e.g. http://127.0.0.1:4646
	// (https:// with the TLS fields below). Required.
	Address string
	// Token is the ACL token's secret ID; empty when ACLs are off.
	Token     string
	Region    string // "" = the agent's region
	Namespace string // "" = "default"
	// CACert, ClientCert and ClientKey are PEM file paths for an
	// https:// Address (all optional).
	CACert, ClientCert, ClientKey string

	// JobSpec is the build job in HCL2 (jobs/specs.Render); Register
	// needs it, and Dispatch uses it to register the job when it is
	// missing.
	JobSpec []byte
	// JobID is the parameterized job's ID; default "pier-build". It
	// replaces the ID written in JobSpec.
	JobID string
	// Grace is how long a build may run past its request's timeout
	// (clone and upload are outside it, and placement takes a moment)
	// before it is stopped as lost; default 1m.
	Grace time.Duration
	// WaitTime bounds each blocking query; default 30s.
	WaitTime time.Duration
	Logger   *slog.Logger
}

// Defaults.
const (
	DefaultJobID    = "pier-build"
	DefaultGrace    = time.Minute
	defaultWaitTime = 30 * time.Second
	// defaultBuildTimeout is the worker's own default (jobs/build) for a
	// request without a timeout.
	defaultBuildTimeout = 15 * time.Minute
	// payloadLimit is Nomad's limit on a dispatch payload.
	payloadLimit = 16 << 10
	// stopTimeout bounds stopping a dispatched job.
	stopTimeout = 30 * time.Second
)

// Dispatcher runs builds as Nomad dispatches. It is safe for concurrent
// use.
type Dispatcher struct {
	cfg    Config
	log    *slog.Logger
	client *api.Client
	jobs   jobsAPI
	allocs allocsAPI
	fs     logsAPI

	regMu sync.Mutex // serialises Register
}

// New returns a Dispatcher for cfg. It does no I/O.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Address == "" {
		return nil, errors.New("nomaddispatch: no nomad address")
	}
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("nomaddispatch: nomad address %q is not an http(s) URL", cfg.Address)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.JobID == "" {
		cfg.JobID = DefaultJobID
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = defaultWaitTime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	acfg := &api.Config{
		Address:   cfg.Address,
		Region:    cfg.Region,
		SecretID:  cfg.Token,
		Namespace: cfg.Namespace,
		WaitTime:  cfg.WaitTime,
	}
	if cfg.CACert != "" || cfg.ClientCert != "" || cfg.ClientKey != "" {
		acfg.TLSConfig = &api.TLSConfig{CACert: cfg.CACert, ClientCert: cfg.ClientCert, ClientKey: cfg.ClientKey}
	}
	client, err := api.NewClient(acfg)
	if err != nil {
		return nil, fmt.Errorf("nomaddispatch: %w", err)
	}
	return &Dispatcher{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "nomaddispatch"),
		client: client,
		jobs:   client.Jobs(),
		allocs: client.Allocations(),
		fs:     client.AllocFS(),
	}, nil
}

// Close releases idle connections.
func (d *Dispatcher) Close() { d.client.Close() }

// JobID is the parameterized job builds are dispatched from.
func (d *Dispatcher) JobID() string { return d.cfg.JobID }

// Register parses Config.JobSpec through the agent (/v1/jobs/parse) and
// registers it as Config.JobID. It is idempotent: registering an
// unchanged spec again changes nothing that matters (a parameterized job
// starts no allocations until dispatched).
func (d *Dispatcher) Register(ctx context.Context) error {
	d.regMu.Lock()
	defer d.regMu.Unlock()
	if len(d.cfg.JobSpec) == 0 {
		return errors.New("register build job: no job spec configured")
	}
	job, err := d.parse(ctx)
	if err != nil {
		return err
	}
	if job.ParameterizedJob == nil || job.Type == nil || *job.Type != "batch" {
		return errors.New("register build job: the spec is not a parameterized batch job")
	}
	job.ID = &d.cfg.JobID
	job.Name = &d.cfg.JobID
	job.Namespace = &d.cfg.Namespace
	if d.cfg.Region != "" {
		job.Region = &d.cfg.Region
	}
	if _, err := taskOf(job, ""); err != nil {
		return fmt.Errorf("register build job: %w", err)
	}
	if _, _, err := d.jobs.Register(job, d.write(ctx)); err != nil {
		return explain("register build job "+d.cfg.JobID, err)
	}
	d.log.Info("build job registered", "job_id", d.cfg.JobID, "namespace", d.cfg.Namespace)
	return nil
}

// parse runs /v1/jobs/parse on the build job's spec.
func (d *Dispatcher) parse(ctx context.Context) (*api.Job, error) {
	return d.parseSpec(ctx, d.cfg.JobSpec, "build job spec")
}

// parseSpec runs /v1/jobs/parse. The API call takes no context, so it
// runs aside and is abandoned (not stopped) when ctx ends first.
func (d *Dispatcher) parseSpec(ctx context.Context, spec []byte, what string) (*api.Job, error) {
	type parsed struct {
		job *api.Job
		err error
	}
	ch := make(chan parsed, 1)
	go func() {
		job, err := d.jobs.ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(spec)})
		ch <- parsed{job, err}
	}()
	select {
	case p := <-ch:
		if p.err != nil {
			return nil, explain("parse "+what, p.err)
		}
		return p.job, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("parse %s: %w", what, ctx.Err())
	}
}

// errDeadline is the cause of a build's wall-clock limit.
var errDeadline = errors.New("build deadline")

// Dispatch runs one build as a dispatch of the build job and waits for its
// result, streaming the task's output into log (never after it returns).
func (d *Dispatcher) Dispatch(ctx context.Context, req jobs.BuildRequest, log io.Writer) (*jobs.BuildResult, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("dispatch %s: %w", req.DeploymentID, err)
	}
	if len(payload) > payloadLimit {
		return nil, fmt.Errorf("dispatch %s: the build request is %d bytes, over nomad's %d-byte payload limit (too many or too large build variables)",
			req.DeploymentID, len(payload), payloadLimit)
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = defaultBuildTimeout
	}
	limit := timeout + d.cfg.Grace
	wctx, cancel := context.WithTimeoutCause(ctx, limit, errDeadline)
	defer cancel()

	jobID, err := d.dispatch(wctx, req.DeploymentID, payload)
	if err != nil {
		return nil, err
	}
	logger := d.log.With("deployment", req.DeploymentID, "job_id", jobID)
	logger.Debug("build dispatched")

	out := newOutput(log)
	w := &watch{d: d, jobID: jobID, out: out, log: logger}
	res, err := w.run(ctx, wctx)
	if err == nil && res.DeploymentID != req.DeploymentID {
		err = fmt.Errorf("build job %s reported a result for deployment %q", jobID, res.DeploymentID)
	}
	if err != nil {
		deadline := ctx.Err() == nil && errors.Is(context.Cause(wctx), errDeadline)
		if deadline && w.allocID == "" {
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			w.explainPlacement(ectx)
			cancel()
		}
		d.stop(ctx, jobID, logger)
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("build job %s stopped: %w", jobID, ctx.Err())
		case deadline:
			why := "still running"
			if w.placement != "" {
				why = "not placed: " + w.placement
			} else if w.allocID == "" {
				why = "not placed yet"
			}
			return nil, fmt.Errorf("build job %s had no result after %s (build timeout %s + grace %s; %s), stopped it: %w",
				jobID, limit, timeout, d.cfg.Grace, why, context.DeadlineExceeded)
		}
		return nil, err
	}
	logger.Debug("build finished", "ok", res.OK())
	return res, nil
}

// dispatch dispatches the build job, registering it first if the cluster
// does not have it (a fresh or reset cluster).
func (d *Dispatcher) dispatch(ctx context.Context, deploymentID string, payload []byte) (string, error) {
	meta := map[string]string{"deployment_id": deploymentID}
	prefix := idPrefix(deploymentID)
	resp, _, err := d.jobs.Dispatch(d.cfg.JobID, meta, payload, prefix, d.write(ctx))
	if err != nil && notRegistered(err) && len(d.cfg.JobSpec) > 0 {
		d.log.Info("build job not registered: registering it", "job_id", d.cfg.JobID)
		if rerr := d.Register(ctx); rerr != nil {
			return "", fmt.Errorf("dispatch %s: %w", deploymentID, rerr)
		}
		resp, _, err = d.jobs.Dispatch(d.cfg.JobID, meta, payload, prefix, d.write(ctx))
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("dispatch %s: %w", deploymentID, ctx.Err())
		}
		return "", explain(fmt.Sprintf("dispatch %s as %s", deploymentID, d.cfg.JobID), err)
	}
	return resp.DispatchedJobID, nil
}

// stop deregisters a dispatched job (not purged: it stays inspectable
// until Nomad's garbage collection), even when ctx has ended.
func (d *Dispatcher) stop(ctx context.Context, jobID string, logger *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if _, _, err := d.jobs.Deregister(jobID, false, d.write(sctx)); err != nil {
		logger.Warn("stop build job", "err", err)
	}
}

func (d *Dispatcher) query(ctx context.Context, index uint64) *api.QueryOptions {
	return (&api.QueryOptions{WaitIndex: index, WaitTime: d.cfg.WaitTime}).WithContext(ctx)
}

func (d *Dispatcher) write(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{}).WithContext(ctx)
}

var notIDChar = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// idPrefix makes the dispatched job's ID readable:
// pier-build/dispatch-<deployment>-<unix time>-<random>.
func idPrefix(deploymentID string) string {
	p := strings.Trim(notIDChar.ReplaceAllString(deploymentID, "-"), "-")
	if len(p) > 48 {
		p = p[:48]
	}
	return p
}

// taskOf returns the task of job's single group that runs the worker:
// the only task, or the one named "build".
func taskOf(job *api.Job, group string) (string, error) {
	var tg *api.TaskGroup
	for _, g := range job.TaskGroups {
		if g != nil && g.Name != nil && (group == "" || *g.Name == group) {
			if tg != nil {
				return "", errors.New("the build job must have one task group")
			}
			tg = g
		}
	}
	if tg == nil {
		return "", errors.New("the build job has no task group")
	}
	if len(tg.Tasks) == 1 {
		return tg.Tasks[0].Name, nil
	}
	for _, t := range tg.Tasks {
		if t.Name == "build" {
			return t.Name, nil
		}
	}
	return "", errors.New(`the build job's group must have one task, or one named "build"`)
}
