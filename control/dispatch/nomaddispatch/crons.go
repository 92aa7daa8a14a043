package nomaddispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hashicorp/nomad/api"
)

// CronJob is one scheduled function's periodic job (control/schedule's
// PeriodicJob, handed over by main).
type CronJob struct {
	ID       string // the job's id, e.g. pier-cron-shop-cleanup-1a2b3c4d
	Project  string
	Schedule string
	Cron     string // five fields, UTC
	// Token is the bearer the launched call sends; it is written to the
	// job's Nomad Variable, never into the job.
	Token string
}

// CronsConfig configures Crons.
type CronsConfig struct {
	// Prefix starts the id of every job Crons manages (required), e.g.
	// "pier-cron-": Sync lists the jobs under it.
	Prefix string
	// Render returns the job's spec in HCL2 (jobs/specs.RenderCron):
	// a periodic batch job that reads the token from the Variable
	// nomad/jobs/<id>, item SecretKey.
	Render func(CronJob) ([]byte, error)
	// SecretKey is the Variable's item holding the token
	// (specs.CronSecretKey).
	SecretKey string
}

// Crons keeps the periodic jobs of scheduled functions in step with the
// schedules (schedule.PeriodicJobs, through main). ACL capabilities on
// the namespace, besides the build job's: list-jobs, and variables
// write/destroy on nomad/jobs/<prefix>*:
//
//	namespace "default" {
//	  capabilities = ["submit-job", "read-job", "list-jobs"]
//	  variables { path "nomad/jobs/pier-cron-*" { capabilities = ["read", "write", "destroy"] } }
//	}
type Crons struct {
	d    *Dispatcher
	cfg  CronsConfig
	log  *slog.Logger
	jobs cronJobsAPI
	vars variablesAPI
}

// cronJobsAPI is the part of the jobs API Crons uses. ACL: ListOptions
// list-jobs (and read-job for the meta); ParseHCLOpts, Register and
// Deregister submit-job.
type cronJobsAPI interface {
	ListOptions(opts *api.JobListOptions, q *api.QueryOptions) ([]*api.JobListStub, *api.QueryMeta, error)
	ParseHCLOpts(req *api.JobsParseRequest) (*api.Job, error)
	Register(job *api.Job, q *api.WriteOptions) (*api.JobRegisterResponse, *api.WriteMeta, error)
	Deregister(jobID string, purge bool, q *api.WriteOptions) (string, *api.WriteMeta, error)
}

// variablesAPI writes the jobs' tokens. ACL: variables read, write and
// destroy on nomad/jobs/<prefix>*.
type variablesAPI interface {
	Peek(path string, qo *api.QueryOptions) (*api.Variable, *api.QueryMeta, error)
	Update(v *api.Variable, qo *api.WriteOptions) (*api.Variable, *api.WriteMeta, error)
	Delete(path string, qo *api.WriteOptions) (*api.WriteMeta, error)
}

var (
	_ cronJobsAPI  = (*api.Jobs)(nil)
	_ variablesAPI = (*api.Variables)(nil)
)

// The meta Crons puts on each job: that it manages the job, and the hash
// of the spec it registered (a job is registered again only when it
// changes, so Nomad's periodic state is left alone otherwise).
const (
	metaManaged = "pier_managed"
	metaSpec    = "pier_spec"
)

// Crons returns the periodic-jobs keeper on the dispatcher's Nomad client.
func (d *Dispatcher) Crons(cfg CronsConfig) (*Crons, error) {
	if cfg.Prefix == "" || cfg.Render == nil || cfg.SecretKey == "" {
		return nil, errors.New("nomaddispatch: crons need a prefix, a renderer and a secret key")
	}
	return &Crons{d: d, cfg: cfg, log: d.cfg.Logger.With("component", "nomadcrons"),
		jobs: d.client.Jobs(), vars: d.client.Variables()}, nil
}

// variablePath is the Nomad Variable a job's tasks read without any ACL
// policy (workload identity).
func variablePath(jobID string) string { return "nomad/jobs/" + jobID }

// Sync registers or updates each job of want (its token first, since its
// task waits for it) and purges the jobs under the prefix that want does
// not name, with their Variables. It goes on past a failing job and
// returns every failure.
func (c *Crons) Sync(ctx context.Context, want []CronJob) error {
	stubs, _, err := c.jobs.ListOptions(&api.JobListOptions{Fields: &api.JobListFields{Meta: true}},
		(&api.QueryOptions{Prefix: c.cfg.Prefix}).WithContext(ctx))
	if err != nil {
		return explain("list periodic jobs", err)
	}
	type state struct {
		spec    string
		stopped bool
	}
	have := map[string]state{}
	for _, s := range stubs {
		if s.ParentID == "" && s.Meta[metaManaged] != "" {
			have[s.ID] = state{spec: s.Meta[metaSpec], stopped: s.Stop}
		}
	}
	var errs []error
	wanted := map[string]bool{}
	for _, j := range want {
		wanted[j.ID] = true
		h, ok := have[j.ID]
		if err := c.apply(ctx, j, h.spec, ok && !h.stopped); err != nil {
			errs = append(errs, err)
		}
	}
	for id := range have {
		if wanted[id] {
			continue
		}
		if _, _, err := c.jobs.Deregister(id, true, c.d.write(ctx)); err != nil {
			errs = append(errs, explain("purge periodic job "+id, err))
			continue
		}
		if _, err := c.vars.Delete(variablePath(id), c.d.write(ctx)); err != nil {
			errs = append(errs, explain("delete the variable of "+id, err))
		}
		c.log.Info("periodic job purged", "job_id", id)
	}
	return errors.Join(errs...)
}

// apply writes j's token and registers j when its spec differs from the
// registered one (or it is missing or stopped).
func (c *Crons) apply(ctx context.Context, j CronJob, registered string, running bool) error {
	path := variablePath(j.ID)
	v, _, err := c.vars.Peek(path, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return explain("read the variable of "+j.ID, err)
	}
	if v == nil || v.Items[c.cfg.SecretKey] != j.Token {
		if _, _, err := c.vars.Update(&api.Variable{Path: path, Items: api.VariableItems{c.cfg.SecretKey: j.Token}}, c.d.write(ctx)); err != nil {
			return explain("write the variable of "+j.ID, err)
		}
	}
	spec, err := c.cfg.Render(j)
	if err != nil {
		return fmt.Errorf("periodic job %s: %w", j.ID, err)
	}
	sum := sha256.Sum256(spec)
	hash := hex.EncodeToString(sum[:8])
	if running && registered == hash {
		return nil
	}
	job, err := c.d.parseSpec(ctx, spec, "periodic job "+j.ID)
	if err != nil {
		return err
	}
	if job.Periodic == nil || job.ID == nil || *job.ID != j.ID {
		return fmt.Errorf("periodic job %s: the rendered spec is not a periodic job with that id", j.ID)
	}
	if job.Meta == nil {
		job.Meta = map[string]string{}
	}
	job.Meta[metaManaged] = "schedules"
	job.Meta[metaSpec] = hash
	if c.d.cfg.Region != "" {
		job.Region = &c.d.cfg.Region
	}
	job.Namespace = &c.d.cfg.Namespace
	if _, _, err := c.jobs.Register(job, c.d.write(ctx)); err != nil {
		return explain("register periodic job "+j.ID, err)
	}
	c.log.Info("periodic job registered", "job_id", j.ID, "project", j.Project, "schedule", j.Schedule, "cron", j.Cron)
	return nil
}
