# Rendered from jobs/specs/build.nomad.hcl by specs.Render; do not edit.
job "pier-build" {
  type        = "batch"
  namespace   = "pier"
  datacenters = ["eu-west-1a", "eu-west-1b"]
  node_pool   = "builds"

  # One dispatch per build: the payload is the jobs.BuildRequest (JSON).
  parameterized {
    payload       = "required"
    meta_required = ["deployment_id"]
  }

  group "build" {
    count = 1

    # Pier retries a build itself (once, after an infrastructure failure):
    # Nomad never restarts or reschedules one.
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    ephemeral_disk {
      size = 2048
    }

    task "build" {
      driver = "docker"

      dispatch_payload {
        file = "request.json"
      }

      config {
        image = "ghcr.io/pierhq/pier:0.3.0"
        # Builds reach the internet, never the cluster (nomad/builder-firewall.sh).
        network_mode = "pier-builds"
        security_opt = ["no-new-privileges"]
        pids_limit   = 4096
        command      = "/usr/local/bin/pier"
        args = [
          "build",
          "--request", "${NOMAD_TASK_DIR}/request.json",
          "--result", "-",
          "--s3-endpoint=https://s3.eu-west-1.amazonaws.com",
          "--s3-bucket=pier-artifacts",
          "--work-dir=$${NOMAD_TASK_DIR}/work",
        ]
      }

      # The worker ends the build itself at the request's timeout, then
      # reports; SIGTERM gives it time to stop the build and clean up.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      # The log and the final "PIER_RESULT {json}" line go to stdout, which
      # control follows through the client fs logs API. 50 MB per stream,
      # counted in the ephemeral disk.
      logs {
        max_files     = 5
        max_file_size = 10
      }

      resources {
        cpu    = 2000
        memory = 4096
      }
    }
  }
}
