package main

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/pierhq/pier/control/config"
	"github.com/pierhq/pier/control/dispatch/nomaddispatch"
	"github.com/pierhq/pier/control/schedule"
	"github.com/pierhq/pier/jobs/specs"
)

// launchBody is what each periodic launch posts to the run endpoint:
// Nomad puts the launched child's id (<job>/periodic-<unix time>) in
// NOMAD_JOB_ID, and control takes the period from it.
const launchBody = `{"launch": "${NOMAD_JOB_ID}"}`

// scheduleTimer is the scheduler's timer settings (schedules.timer) and,
// for "nomad", the keeper of its periodic jobs on the build dispatcher's
// Nomad client.
func scheduleTimer(rt *config.Runtime, b *backends) (schedule.Config, schedule.PeriodicJobs, error) {
	sc := rt.Schedules
	if sc.Timer != schedule.TimerNomad {
		return schedule.Config{Timer: schedule.TimerBuiltin}, nil, nil
	}
	if b.nomad == nil {
		return schedule.Config{}, nil, errors.New("schedules.timer = \"nomad\" needs builds on Nomad (the nomad block)")
	}
	base := strings.TrimRight(sc.ControlURL, "/")
	crons, err := b.nomad.Crons(nomaddispatch.CronsConfig{
		Prefix:    schedule.JobIDPrefix,
		SecretKey: specs.CronSecretKey,
		Render: func(j nomaddispatch.CronJob) ([]byte, error) {
			return specs.RenderCron(specs.CronVars{
				JobID: j.ID, Datacenters: sc.Datacenters, NodePool: sc.NodePool,
				Schedule: j.Cron, TimeZone: "UTC",
				URL:     base + "/v1/projects/" + url.PathEscape(j.Project) + "/schedules/" + url.PathEscape(j.Schedule) + "/run",
				Body:    launchBody,
				Project: j.Project, Name: j.Schedule,
				Driver: sc.Driver, Image: sc.Image, CurlPath: sc.CurlPath,
				Secrets: true,
			})
		},
	})
	if err != nil {
		return schedule.Config{}, nil, err
	}
	return schedule.Config{Timer: schedule.TimerNomad, TokenKey: sc.TokenKey}, periodicJobs{crons}, nil
}

// periodicJobs adapts nomaddispatch.Crons to schedule.PeriodicJobs.
type periodicJobs struct{ c *nomaddispatch.Crons }

func (p periodicJobs) Sync(ctx context.Context, want []schedule.PeriodicJob) error {
	jobs := make([]nomaddispatch.CronJob, len(want))
	for i, j := range want {
		jobs[i] = nomaddispatch.CronJob{ID: j.ID, Project: j.Project, Schedule: j.Schedule, Cron: j.Cron, Token: j.Token}
	}
	return p.c.Sync(ctx, jobs)
}
