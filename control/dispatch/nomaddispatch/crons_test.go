package nomaddispatch_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/pierhq/pier/control/dispatch/nomaddispatch"
	"github.com/pierhq/pier/jobs/specs"
	"github.com/pierhq/pier/tests/testenv"
)

// TestCronsSync keeps periodic jobs on the real agent in step: Sync
// registers each job with its token in the job's Variable, leaves an
// unchanged job alone (same modify index), updates a changed cron and
// token, re-registers a job stopped by hand, purges the jobs (and
// Variables) no longer wanted, never touches a job under the prefix it
// does not manage, and goes on past a job whose spec does not render.
func TestCronsSync(t *testing.T) {
	agent := testenv.Nomad(t)
	nc, err := api.NewClient(&api.Config{Address: agent.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	d, err := nomaddispatch.New(nomaddispatch.Config{Address: agent.Addr,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	prefix := uniqueID("pier-cron-t") + "-"
	crons, err := d.Crons(nomaddispatch.CronsConfig{Prefix: prefix, SecretKey: specs.CronSecretKey,
		Render: func(j nomaddispatch.CronJob) ([]byte, error) {
			return specs.RenderCron(specs.CronVars{JobID: j.ID, Schedule: j.Cron, URL: "http://127.0.0.1:9/run",
				Body: `{"launch": "${NOMAD_JOB_ID}"}`, Project: j.Project, Name: j.Schedule,
				Driver: specs.DriverRawExec, Secrets: true})
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	a := nomaddispatch.CronJob{ID: prefix + "a", Project: "shop", Schedule: "a", Cron: "0 0 1 1 *", Token: "pcron_a1"}
	b := nomaddispatch.CronJob{ID: prefix + "b", Project: "shop", Schedule: "b", Cron: "0 0 2 1 *", Token: "pcron_b1"}
	t.Cleanup(func() { _ = crons.Sync(t.Context(), nil) })

	// Not ours: the same prefix, no pier_managed meta.
	foreign, err := specs.RenderCron(specs.CronVars{JobID: prefix + "foreign", Schedule: "0 0 3 1 *", URL: "http://127.0.0.1:9/",
		Driver: specs.DriverRawExec})
	if err != nil {
		t.Fatal(err)
	}
	fj, err := nc.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(foreign)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := nc.Jobs().Register(fj, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Jobs().Deregister(prefix+"foreign", true, nil) })

	info := func(id string) *api.Job {
		t.Helper()
		j, _, err := nc.Jobs().Info(id, nil)
		if err != nil {
			t.Fatalf("job %s: %v", id, err)
		}
		return j
	}
	token := func(id string) string {
		v, _, err := nc.Variables().Peek("nomad/jobs/"+id, nil)
		if err != nil || v == nil {
			return ""
		}
		return v.Items[specs.CronSecretKey]
	}
	gone := func(id string) bool {
		_, _, err := nc.Jobs().Info(id, nil)
		return err != nil && strings.Contains(err.Error(), "404") && token(id) == ""
	}

	if err := crons.Sync(ctx, []nomaddispatch.CronJob{a, b}); err != nil {
		t.Fatal(err)
	}
	ja := info(a.ID)
	if ja.Periodic == nil || ja.Periodic.Specs[0] != a.Cron || ja.Meta["pier_managed"] == "" || ja.Meta["pier_schedule"] != "a" || token(a.ID) != a.Token || token(b.ID) != b.Token {
		t.Fatalf("after the first sync: job a %+v meta %v, tokens %q %q", ja.Periodic, ja.Meta, token(a.ID), token(b.ID))
	}

	// Unchanged: not registered again.
	if err := crons.Sync(ctx, []nomaddispatch.CronJob{a, b}); err != nil {
		t.Fatal(err)
	}
	if again := info(a.ID); *again.JobModifyIndex != *ja.JobModifyIndex {
		t.Errorf("an unchanged job was registered again: modify index %d → %d", *ja.JobModifyIndex, *again.JobModifyIndex)
	}

	// a's cron and token change, b goes away, c does not render.
	a.Cron, a.Token = "*/5 * * * *", "pcron_a2"
	bad := nomaddispatch.CronJob{ID: prefix + "c", Project: "shop", Schedule: "c", Cron: "hourly", Token: "pcron_c"}
	err = crons.Sync(ctx, []nomaddispatch.CronJob{a, bad})
	if err == nil || !strings.Contains(err.Error(), prefix+"c") || !strings.Contains(err.Error(), "not a cron expression") {
		t.Errorf("sync with a bad job: %v, want an error naming it", err)
	}
	if ja = info(a.ID); ja.Periodic.Specs[0] != "*/5 * * * *" || token(a.ID) != "pcron_a2" {
		t.Errorf("after the change: cron %q token %q", ja.Periodic.Specs[0], token(a.ID))
	}
	if !gone(b.ID) {
		t.Errorf("job b or its variable is still there")
	}
	if _, _, err := nc.Jobs().Info(prefix+"foreign", nil); err != nil {
		t.Errorf("the foreign job was touched: %v", err)
	}

	// Stopped by hand: registered again.
	if _, _, err := nc.Jobs().Deregister(a.ID, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := crons.Sync(ctx, []nomaddispatch.CronJob{a}); err != nil {
		t.Fatal(err)
	}
	if ja = info(a.ID); ja.Stop != nil && *ja.Stop {
		t.Errorf("a stopped job was not started again")
	}

	// Nothing wanted: all ours purged.
	if err := crons.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !gone(a.ID) {
		t.Errorf("job a or its variable is still there")
	}
}
