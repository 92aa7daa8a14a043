{{/*
  control.nomad.hcl: Pier's control plane (API, webhooks, build queue,
  cutover coordinator) as a service job: Count instances, each on its own
  client node of the control node pool, behind the health-checked service
  "pier-control". Rendered by RenderControl (control.go); every value goes
  through hcl (an HCL string literal) or list, and the output through
  hclwrite.Format.
*/ -}}
# Rendered from jobs/specs/control.nomad.hcl by specs.RenderControl; do not edit.
job {{hcl .JobID}} {
  type        = "service"
  namespace   = {{hcl .Namespace}}
{{- if .Region}}
  region      = {{hcl .Region}}
{{- end}}
  datacenters = {{list .Datacenters}}
  node_pool   = {{hcl .NodePool}}

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
    count = {{.Count}}

    # Each instance on its own machine: losing one loses one instance.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
{{- if ge .Port 1}}
        static = {{.Port}}
{{- end}}
      }
    }

    service {
      name     = "pier-control"
      provider = {{hcl .Provider}}
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
      driver = {{hcl .Driver}}

      config {
{{- if eq .Driver "docker"}}
        image        = {{hcl .Image}}
        network_mode = "host"
{{- end}}
        command = {{hcl .Command}}
        args    = ["serve", "--roles", "control"{{if .Config}}, "--config", "${NOMAD_TASK_DIR}/pier.hcl"{{end}}]
      }

      env {
{{- range $k, $v := .Env}}
        {{$k}} = {{hcl $v}}
{{- end}}
      }
{{- if .Config}}

      # The non-secret settings (docs/configuration.md).
      template {
        destination = "local/pier.hcl"
        change_mode = "restart"
        data        = {{hcl .Config}}
      }
{{- end}}
{{- if .Secrets}}

      # Secrets from the Nomad Variable {{secretsPath .JobID}}, as
      # environment variables; the task waits until the variable exists.
      template {
        destination = "secrets/pier.env"
        env         = true
        change_mode = "restart"
        data        = {{hcl (secrets .JobID)}}
      }
{{- end}}
{{- if .VaultRole}}

      # A Vault token for transit (vault/pier-control.hcl), as VAULT_TOKEN.
      vault {
        role        = {{hcl .VaultRole}}
        change_mode = "restart"
      }
{{- end}}

      # Stop taking requests, finish the ones in flight, then exit.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = {{.CPU}}
        memory = {{.MemoryMB}}
      }
    }
  }
}
