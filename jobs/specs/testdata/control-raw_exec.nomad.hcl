# Rendered from jobs/specs/control.nomad.hcl by specs.RenderControl; do not edit.
job "pier-control" {
  type        = "service"
  namespace   = "default"
  datacenters = ["*"]
  node_pool   = "default"

  # One instance at a time; a new version must keep its check passing for
  # 10s, else Nomad stops the rollout and goes back to the last good one.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "control" {
    count = 1

    # Each instance on its own machine: losing one loses one instance.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
      }
    }

    service {
      name     = "pier-control"
      provider = "nomad"
      port     = "http"
      tags     = ["pier", "http"]

      check {
        name     = "pier control api"
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"

        # Restart an instance whose API stops answering.
        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    task "control" {
      driver = "raw_exec"

      config {
        command = "/opt/pier/pier"
        args    = ["serve", "--roles", "control"]
      }

      env {
        PIER_CONTROL_LISTEN = "127.0.0.1:$${NOMAD_PORT_http}"
        PIER_DATA_DIR       = "$${NOMAD_ALLOC_DIR}/data"
      }

      # Stop taking requests, finish the ones in flight, then exit.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
