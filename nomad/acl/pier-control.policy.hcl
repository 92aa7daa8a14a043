# ACL policy for the token Pier's control plane uses to run builds
# (control/dispatch/nomaddispatch): the build job lives in its own
# namespace, so this token can neither touch the control and edge jobs nor
# read their secrets (Nomad Variables in the "pier" namespace). Create it
# with:
#
#   nomad namespace apply nomad/namespaces/pier-builds.hcl
#   nomad acl policy apply -description "Pier control: build jobs" pier-control nomad/acl/pier-control.policy.hcl
#   nomad acl token create -name pier-control -policy pier-control
#
# and set nomad.namespace = "pier-builds" in control's config.
namespace "pier-builds" {
  # submit-job: register the build job, stop a build past its deadline
  # dispatch-job: one dispatch per build
  # read-job: follow the dispatched job's allocation and evaluations
  # read-logs: stream the build log
  # list-jobs: with schedules.timer = "nomad", list the pier-cron-* periodic
  # jobs (submit-job registers and purges them)
  capabilities = ["submit-job", "dispatch-job", "read-job", "read-logs", "list-jobs"]

  # schedules.timer = "nomad": each periodic job's token, which its task
  # reads from nomad/jobs/<job> (docs/functions.md)
  variables {
    path "nomad/jobs/pier-cron-*" {
      capabilities = ["write", "read", "destroy"]
    }
  }
}

# The build job runs in the "builds" node pool; registering a job needs
# read on its pool (add schedules.node_pool's pool if it differs).
node_pool "builds" {
  policy = "read"
}
