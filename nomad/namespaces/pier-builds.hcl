# nomad namespace apply nomad/namespaces/pier-builds.hcl
#
# Builds only: control's token (acl/pier-control.policy.hcl) may submit
# and dispatch jobs here and nowhere else, so it cannot touch the control
# or edge jobs, nor read their secrets.
name        = "pier-builds"
description = "Pier builds: the pier-build parameterized job and its dispatches"

capabilities {
  enabled_task_drivers = ["docker", "exec"]
}
