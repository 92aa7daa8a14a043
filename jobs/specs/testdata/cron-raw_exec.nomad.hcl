# Rendered from jobs/specs/cron.nomad.hcl by specs.RenderCron; do not edit.
job "pier-cron-t" {
  type        = "batch"
  namespace   = "default"
  datacenters = ["*"]
  node_pool   = "default"

  periodic {
    crons            = ["0 3 * * *"]
    time_zone        = "UTC"
    prohibit_overlap = true
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
      driver = "raw_exec"

      config {
        command = "/usr/bin/curl"
        args    = ["--fail", "--silent", "--show-error", "--location", "--max-redirs", "3", "--max-time", "2.5", "--request", "GET", "--header", "User-Agent: pier-cron", "--header", "X-Pier-Cron: pier-cron-t", "--header", "Host: shop.pier.test", "http://127.0.0.1:8080/api/nightly"]
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
