# Rendered from jobs/specs/cron.nomad.hcl by specs.RenderCron; do not edit.
job "pier-cron-shop-cleanup" {
  type        = "batch"
  namespace   = "default"
  datacenters = ["*"]
  node_pool   = "control"

  periodic {
    crons            = ["*/15 * * * *"]
    time_zone        = "Australia/Sydney"
    prohibit_overlap = true
  }

  meta {
    pier_project  = "shop"
    pier_schedule = "cleanup"
  }

  group "call" {
    # One attempt per tick: a failed call shows as a failed run in the
    # Nomad UI and waits for the next tick.
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    ephemeral_disk {
      size = 10
    }

    task "call" {
      driver = "docker"

      config {
        image   = "docker.io/curlimages/curl:8.11.1"
        command = "/usr/bin/curl"
        args    = ["--fail", "--silent", "--show-error", "--location", "--max-redirs", "3", "--max-time", "30", "--request", "POST", "--header", "User-Agent: pier-cron", "--header", "X-Pier-Cron: pier-cron-shop-cleanup", "--header", "@$${NOMAD_SECRETS_DIR}/cron.headers", "--header", "Content-Type: application/json", "--data-raw", "{\"launch\": \"$${NOMAD_JOB_ID}\"}", "https://shop.pier.example.com/api/cron/cleanup"]
      }

      # "Authorization: Bearer <PIER_CRON_SECRET>" from the Nomad Variable
      # nomad/jobs/pier-cron-shop-cleanup; the run waits until the variable exists.
      template {
        destination = "secrets/cron.headers"
        data        = "{{ with nomadVar \"nomad/jobs/pier-cron-shop-cleanup\" }}Authorization: Bearer {{ .PIER_CRON_SECRET }}{{ end }}\n"
      }

      logs {
        max_files     = 2
        max_file_size = 1
      }

      resources {
        cpu    = 50
        memory = 64
      }
    }
  }
}
