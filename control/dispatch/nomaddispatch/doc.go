// Package nomaddispatch is the production build runner: each claimed build
// is one dispatch of the parameterized batch job "pier-build" (rendered by
// jobs/specs, handed over as Config.JobSpec). The JSON jobs.BuildRequest is
// the dispatch payload and the deployment ID its meta; the dispatcher then
// follows the dispatched job's allocation with blocking queries, streams the
// task's stdout and stderr into the build log as they are written (client
// fs logs API, follow), and takes the result from the worker's last stdout
// line, "PIER_RESULT {json}" (`pier build --result -`), which it strips
// from the log.
//
// It implements deploy.Dispatcher: a build that ran and failed is a result
// with Error set; a build that could not run (Nomad unreachable or
// refusing, an allocation lost or failed without a result, no result by
// the request's timeout plus Config.Grace) is an error, after which the
// dispatched job is stopped.
//
// ACL policy for the token (namespace as configured; see nomad/acl/):
//
//	namespace "default" {
//	  capabilities = ["submit-job", "dispatch-job", "read-job", "read-logs"]
//	}
//	node { policy = "read" } # optional: read logs from client nodes directly
//
// submit-job is for Register and for stopping a build past its deadline.
//
// Crons (crons.go) keeps the scheduled functions' periodic jobs
// (pier-cron-*) and their Nomad Variables in step with the schedules, for
// control/schedule's nomad timer; its ACL needs are on the type.
//
// It is the only importer of github.com/hashicorp/nomad/api, and imports
// jobs only. Reached by control/deploy (as a deploy.Dispatcher) through main.
package nomaddispatch
