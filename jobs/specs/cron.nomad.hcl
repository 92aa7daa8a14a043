{{/*
  cron.nomad.hcl: one scheduled function as a periodic batch job. Nomad's
  leader launches it on schedule, so it fires once across the fleet, and
  never while the previous run is still going. The task is a single HTTP
  request (curl) to the function through the edges. Rendered by RenderCron
  (cron.go); every value goes through hcl or list, and the output through
  hclwrite.Format.
*/ -}}
# Rendered from jobs/specs/cron.nomad.hcl by specs.RenderCron; do not edit.
job {{hcl .JobID}} {
  type        = "batch"
  namespace   = {{hcl .Namespace}}
{{- if .Region}}
  region      = {{hcl .Region}}
{{- end}}
  datacenters = {{list .Datacenters}}
  node_pool   = {{hcl .NodePool}}

  periodic {
    crons            = [{{hcl .Schedule}}]
    time_zone        = {{hcl .TimeZone}}
    prohibit_overlap = true
  }
{{- if .Meta}}

  meta {
{{- range $k, $v := .Meta}}
    {{$k}} = {{hcl $v}}
{{- end}}
  }
{{- end}}

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
      driver = {{hcl .Driver}}

      config {
{{- if eq .Driver "docker"}}
        image   = {{hcl .Image}}
{{- end}}
        command = {{hcl .Command}}
        args    = {{list .Args}}
      }
{{- if .Secrets}}

      # "Authorization: Bearer <{{"PIER_CRON_SECRET"}}>" from the Nomad Variable
      # {{secretsPath .JobID}}; the run waits until the variable exists.
      template {
        destination = "secrets/cron.headers"
        data        = {{hcl (cronHeaders .JobID)}}
      }
{{- end}}

      logs {
        max_files     = 2
        max_file_size = 1
      }

      resources {
        cpu    = {{.CPU}}
        memory = {{.MemoryMB}}
      }
    }
  }
}
