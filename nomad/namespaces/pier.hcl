# nomad namespace apply nomad/namespaces/pier.hcl
#
# Pier's long-running jobs (pier-control, pier-edge) and scheduled
# functions, and their secrets: Nomad Variables nomad/jobs/<job>.
name        = "pier"
description = "Pier control, edges and scheduled functions"

capabilities {
  enabled_task_drivers = ["docker", "exec"]
}
