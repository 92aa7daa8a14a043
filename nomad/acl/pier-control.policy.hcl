# ACL policy for the token control uses to run builds
# (control/dispatch/nomaddispatch). Create it with:
#
#   nomad acl policy apply -description "Pier control: build jobs" pier-control nomad/acl/pier-control.policy.hcl
#   nomad acl token create -name pier-control -policy pier-control
#
# Use the namespace control is configured with (--nomad-namespace).
namespace "default" {
  # submit-job: register the build job, stop a build past its deadline
  # dispatch-job: one dispatch per build
  # read-job: follow the dispatched job's allocation and evaluations
  # read-logs: stream the build log
  capabilities = ["submit-job", "dispatch-job", "read-job", "read-logs"]
}

# Optional: lets control read logs from the client node directly instead
# of through a server.
node {
  policy = "read"
}
