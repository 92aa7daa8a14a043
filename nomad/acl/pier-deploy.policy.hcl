# ACL policy for whoever deploys Pier itself (an operator, CI, the
# Vagrant provisioner): run and update the control, edge and scheduled
# function jobs in the "pier" namespace and manage their secrets (Nomad
# Variables nomad/jobs/<job>). It cannot run anything in other namespaces,
# and it only reads the builds.
#
#   nomad acl policy apply -description "Pier deploy: control, edge, cron jobs" pier-deploy nomad/acl/pier-deploy.policy.hcl
#   nomad acl token create -name pier-deploy -policy pier-deploy
namespace "pier" {
  capabilities = ["submit-job", "dispatch-job", "read-job", "list-jobs", "read-logs", "read-fs",
  "alloc-lifecycle", "parse-job"]

  variables {
    path "nomad/jobs/*" {
      capabilities = ["write", "read", "list", "destroy"]
    }
  }
}

namespace "pier-builds" {
  policy = "read"
}

node_pool "*" {
  policy = "read"
}

node {
  policy = "read"
}
