# ACL policy for people who watch Pier in the Nomad UI: jobs, allocations,
# logs and nodes of Pier's namespaces, read only. It cannot read Pier's
# secrets (Nomad Variables), change a job, or exec into a task.
#
#   nomad acl policy apply -description "Pier: read only" pier-readonly nomad/acl/pier-readonly.policy.hcl
namespace "pier" {
  policy       = "read"
  capabilities = ["read-logs"]
}

namespace "pier-builds" {
  policy       = "read"
  capabilities = ["read-logs"]
}

node_pool "*" {
  policy = "read"
}

node {
  policy = "read"
}

agent {
  policy = "read"
}
