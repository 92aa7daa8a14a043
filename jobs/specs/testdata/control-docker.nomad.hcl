# Rendered from jobs/specs/control.nomad.hcl by specs.RenderControl; do not edit.
job "pier-control" {
  type        = "service"
  namespace   = "pier"
  region      = "syd"
  datacenters = ["syd"]
  node_pool   = "control"

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
    count = 3

    # Each instance on its own machine: losing one loses one instance.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
        static = 7070
      }
    }

    service {
      name     = "pier-control"
      provider = "consul"
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
      driver = "docker"

      config {
        image        = "ghcr.io/pierhq/pier:1.0.0"
        network_mode = "host"
        command      = "/usr/local/bin/pier"
        args         = ["serve", "--roles", "control", "--config", "${NOMAD_TASK_DIR}/pier.hcl"]
      }

      env {
        PIER_CONTROL_LISTEN = "$${NOMAD_ADDR_http}"
        PIER_DATA_DIR       = "$${NOMAD_ALLOC_DIR}/data"
        PIER_LOG_LEVEL      = "info"
      }

      # The non-secret settings (docs/configuration.md).
      template {
        destination = "local/pier.hcl"
        change_mode = "restart"
        data        = "base_domain = \"pier.example.com\"\nconsul {\n  address = \"http://127.0.0.1:8500\"\n}\n"
      }

      # Secrets from the Nomad Variable nomad/jobs/pier-control, as
      # environment variables; the task waits until the variable exists.
      template {
        destination = "secrets/pier.env"
        env         = true
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/pier-control\" }}{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}\n{{ end }}{{ end }}"
      }

      # A Vault token for transit (vault/pier-control.hcl), as VAULT_TOKEN.
      vault {
        role        = "pier-control"
        change_mode = "restart"
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
