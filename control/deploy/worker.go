package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pierhq/pier/control"
	"github.com/pierhq/pier/jobs"
)

// Kick wakes an idle worker (a deployment was queued).
func (s *Service) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run processes the build queue with cfg.Workers workers until ctx ends.
// At start it requeues claims left behind by a crashed worker.
func (s *Service) Run(ctx context.Context) error {
	if err := s.recoverStale(ctx, time.Now().Add(-s.cfg.StaleClaim)); err != nil {
		s.log.Warn("recover stale builds", "err", err)
	}
	var wg sync.WaitGroup
	for i := range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx, fmt.Sprintf("%s/%d", s.cfg.WorkerID, i))
		}()
	}
	wg.Wait()
	s.stopHooks()
	return ctx.Err()
}

// RecoverOnStart requeues every claimed job: used by a single-process
// control (dev mode), where no other worker can hold a claim.
func (s *Service) RecoverOnStart(ctx context.Context) error {
	return s.recoverStale(ctx, time.Now().Add(time.Hour))
}

func (s *Service) recoverStale(ctx context.Context, before time.Time) error {
	stale, err := s.deps.Store.ClaimedBuilds(ctx, before)
	if err != nil {
		return err
	}
	for _, j := range stale {
		s.log.Warn("requeueing build left by a stopped worker", "deployment", j.DeploymentID, "worker", j.ClaimedBy)
		if err := s.retryOrFail(ctx, j, "the build worker stopped during the build"); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) work(ctx context.Context, worker string) {
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			job, err := s.deps.Store.ClaimBuild(ctx, worker)
			if errors.Is(err, control.ErrNotFound) {
				break
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("claim build", "err", err)
				}
				break
			}
			s.process(ctx, job)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// process runs one claimed job to an end state. It never returns an error:
// whatever happens is recorded on the deployment.
func (s *Service) process(ctx context.Context, job *control.BuildJob) {
	log := s.log.With("deployment", job.DeploymentID, "attempt", job.Attempt)
	d, err := s.deps.Store.GetDeployment(ctx, job.DeploymentID)
	if err != nil {
		log.Error("claimed build has no deployment", "err", err)
		_ = s.deps.Store.CompleteBuild(ctx, job.ID)
		return
	}
	if d.State.Final() { // canceled while queued
		_ = s.deps.Store.CompleteBuild(ctx, job.ID)
		return
	}
	p, err := s.deps.Store.GetProject(ctx, d.ProjectID)
	if err != nil {
		log.Error("claimed build has no project", "err", err)
		_ = s.deps.Store.CompleteBuild(ctx, job.ID)
		return
	}
	logw := &storeLog{ctx: ctx, store: s.deps.Store, id: d.ID}

	if d.Source == control.SourceUpload {
		// Uploaded files: control wrote the manifest, nothing to build.
		d.State, d.StartedAt, d.Attempts = control.StateBuilding, time.Now().UTC(), job.Attempt
		if err := s.deps.Store.UpdateDeployment(ctx, d); err != nil {
			log.Error("mark building", "err", err)
		}
		fmt.Fprintf(logw, "==> pier: deploying %d uploaded files of %s (no build)\n", d.Files, p.Name)
		s.finish(ctx, job, d, &jobs.BuildResult{DeploymentID: d.ID, Framework: d.Framework,
			ManifestKey: d.ManifestKey, Files: d.Files, Bytes: d.Bytes})
		return
	}

	req := jobs.BuildRequest{
		DeploymentID:   d.ID,
		ProjectID:      p.ID,
		ProjectName:    p.Name,
		RepoURL:        p.RepoURL,
		Ref:            d.Ref,
		InstallCommand: p.InstallCommand,
		BuildCommand:   p.BuildCommand,
		OutputDir:      p.OutputDir,
		Timeout:        s.cfg.BuildTimeout,
	}
	if p.Framework != "auto" {
		req.Framework = p.Framework
	}
	if len(p.GitToken) > 0 {
		tok, err := s.deps.Sealer.Unseal(ctx, string(p.GitToken))
		if err != nil {
			log.Error("unseal git token", "err", err)
			s.finish(ctx, job, d, &jobs.BuildResult{Error: "the repository access token could not be decrypted"})
			return
		}
		req.GitToken = string(tok)
	}
	// Build-scoped variables, unsealed only now; runtime-scoped ones never
	// reach the build.
	env, err := s.buildEnv(ctx, d.ID)
	if err != nil {
		log.Error("unseal build environment", "err", err)
		s.finish(ctx, job, d, &jobs.BuildResult{Error: "the environment variables could not be decrypted"})
		return
	}
	req.Env = env

	d.State = control.StateBuilding
	d.StartedAt = time.Now().UTC()
	d.Attempts = job.Attempt
	if err := s.deps.Store.UpdateDeployment(ctx, d); err != nil {
		log.Error("mark building", "err", err)
	}
	log.Info("build started", "project", p.ID, "ref", d.Ref, "build_variables", len(env))
	fmt.Fprintf(logw, "==> pier: building %s of %s (attempt %d)\n", d.Ref, p.Name, job.Attempt)
	s.report(ctx, p, d, "pending", "Building")
	s.fireHook(p, d, control.HookPreBuild, "", "") // never waited for

	bctx, cancel := context.WithTimeout(ctx, s.cfg.BuildTimeout+2*time.Minute)
	s.mu.Lock()
	s.running[d.ID] = cancel
	s.mu.Unlock()
	res, err := s.deps.Dispatcher.Dispatch(bctx, req, logw)
	canceled := bctx.Err() != nil && ctx.Err() == nil && !errors.Is(bctx.Err(), context.DeadlineExceeded)
	cancel()
	s.mu.Lock()
	delete(s.running, d.ID)
	s.mu.Unlock()

	switch {
	case ctx.Err() != nil:
		// Shutting down: leave the claim for recovery at the next start.
		return
	case canceled:
		fmt.Fprintf(logw, "==> pier: canceled\n")
		d.State = control.StateCanceled
		d.FinishedAt = time.Now().UTC()
		if err := s.deps.Store.UpdateDeployment(ctx, d); err != nil {
			log.Error("mark canceled", "err", err)
		}
		_ = s.deps.Store.CompleteBuild(ctx, job.ID)
		s.report(ctx, p, d, "error", "Canceled")
		return
	case err != nil:
		log.Warn("build dispatch failed", "err", err)
		fmt.Fprintf(logw, "==> pier: the build could not run: %v\n", err)
		if rerr := s.retryOrFail(ctx, job, "the build could not be run"); rerr != nil {
			log.Error("record dispatch failure", "err", rerr)
		}
		return
	}
	s.finish(ctx, job, d, res)
}

// retryOrFail requeues a job lost to infrastructure, at most MaxAttempts
// tries in all; then the deployment fails with reason.
func (s *Service) retryOrFail(ctx context.Context, job *control.BuildJob, reason string) error {
	if job.Attempt < s.cfg.MaxAttempts {
		if err := s.deps.Store.RequeueBuild(ctx, job.ID); err != nil {
			return err
		}
		d, err := s.deps.Store.GetDeployment(ctx, job.DeploymentID)
		if err != nil {
			return err
		}
		d.State = control.StateQueued
		if err := s.deps.Store.UpdateDeployment(ctx, d); err != nil {
			return err
		}
		s.Kick()
		return nil
	}
	d, err := s.deps.Store.GetDeployment(ctx, job.DeploymentID)
	if err != nil {
		return err
	}
	s.finish(ctx, job, d, &jobs.BuildResult{Error: fmt.Sprintf("%s (after %d attempts)", reason, job.Attempt)})
	return nil
}

// finish records a build result; a successful build is announced to the
// edges and promoted: production to the production pointer, a preview to
// its alias.
//
// The deployment reaches a final state (ready or failed) only after its
// last log line is written, promotion included: a client following the
// log (GET .../logs?follow=1) stops at the final state, so it must not
// miss "live at" or the failure's reason. A crash before that leaves the
// job claimed, and recovery builds it again.
func (s *Service) finish(ctx context.Context, job *control.BuildJob, d *control.Deployment, res *jobs.BuildResult) {
	log := s.log.With("deployment", d.ID)
	logw := &storeLog{ctx: ctx, store: s.deps.Store, id: d.ID}
	if res.OK() {
		// The edges must find the sealed runtime environment with the
		// manifest, so it is published before the deployment is ready.
		if err := s.publishRuntimeEnv(ctx, d.ID); err != nil {
			log.Error("publish runtime environment", "err", err)
			res = &jobs.BuildResult{CommitSHA: res.CommitSHA, Framework: res.Framework,
				Error: "the runtime environment could not be published"}
		}
	}
	d.CommitSHA = res.CommitSHA
	d.Framework = res.Framework
	p, err := s.deps.Store.GetProject(ctx, d.ProjectID)
	if err != nil {
		log.Error("project vanished", "err", err)
		return
	}
	if !res.OK() {
		fmt.Fprintf(logw, "==> pier: build failed: %s\n", res.Error)
		log.Info("build failed", "reason", res.Error)
		d.State, d.Error = control.StateFailed, res.Error
		if !s.record(ctx, job, d) {
			return
		}
		s.report(ctx, p, d, "failure", "Build failed: "+res.Error)
		s.fireHook(p, d, control.HookDeployFailed, "", "")
		return
	}
	d.ManifestKey = res.ManifestKey
	d.Files = res.Files
	d.Bytes = res.Bytes
	fmt.Fprintf(logw, "==> pier: build ready in %s: %d files, %d bytes (%d new blobs)\n",
		res.Duration.Round(time.Millisecond), res.Files, res.Bytes, res.Uploaded)
	log.Info("build ready", "files", res.Files, "took", res.Duration)

	if err := s.deps.Router.Announce(ctx, p.ID, p.Name, d.ID); err != nil {
		log.Warn("announce deployment", "err", err)
	}
	env := control.Production
	if d.Environment != control.Production {
		env = d.Alias
	}
	if env == "" { // a preview of a bare commit: its own URL only
		d.State = control.StateReady
		if !s.record(ctx, job, d) {
			return
		}
		s.report(ctx, p, d, "success", "Preview ready")
		s.fireHook(p, d, control.HookPostDeploy, "", "")
		return
	}
	c, err := s.deps.Router.Promote(ctx, p.ID, p.Name, env, d.ID)
	if err != nil {
		fmt.Fprintf(logw, "==> pier: not promoted, the previous deployment stays live: %v\n", err)
		log.Warn("promote after build", "environment", env, "err", err)
		d.State = control.StateReady
		if !s.record(ctx, job, d) {
			return
		}
		s.report(ctx, p, d, "error", "Built, but not live: the edges did not confirm it")
		s.fireHook(p, d, control.HookDeployFailed, "",
			"built, but not live: the edges did not confirm it, so the previous deployment stays live")
		return
	}
	live := s.URL("", p.Name)
	if env != control.Production {
		live = s.URL(env, p.Name)
	}
	fmt.Fprintf(logw, "==> pier: live at %s on %d edge(s) in %s\n", live, len(c.Edges), c.Total.Round(time.Millisecond))
	d.State = control.StateReady
	if !s.record(ctx, job, d) {
		return
	}
	if env == control.Production {
		s.report(ctx, p, d, "success", "Deployed to production")
	} else {
		s.report(ctx, p, d, "success", "Preview ready at "+live)
	}
	s.fireHook(p, d, control.HookPostDeploy, c.Previous, "")
}

// record writes a deployment's final state and takes its job off the
// queue; false means the state could not be written (logged).
func (s *Service) record(ctx context.Context, job *control.BuildJob, d *control.Deployment) bool {
	d.FinishedAt = time.Now().UTC()
	if err := s.deps.Store.UpdateDeployment(ctx, d); err != nil {
		s.log.Error("record build result", "deployment", d.ID, "err", err)
		return false
	}
	if err := s.deps.Store.CompleteBuild(ctx, job.ID); err != nil {
		s.log.Error("complete build job", "deployment", d.ID, "err", err)
	}
	return true
}

// storeLog appends build output to the store as it arrives.
type storeLog struct {
	ctx   context.Context
	store control.Store
	id    string
}

func (w *storeLog) Write(p []byte) (int, error) {
	if err := w.store.AppendLog(w.ctx, w.id, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
