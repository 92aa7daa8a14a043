{{/*
  edge.nomad.hcl: Pier's edge as a system job: one instance on every client
  node of the edge node pool, in every datacenter the job names. Rendered by
  RenderEdge (edge.go); every value goes through hcl or list, and the output
  through hclwrite.Format.
*/ -}}
# Rendered from jobs/specs/edge.nomad.hcl by specs.RenderEdge; do not edit.
job {{hcl .JobID}} {
  type        = "system"
  namespace   = {{hcl .Namespace}}
{{- if .Region}}
  region      = {{hcl .Region}}
{{- end}}
  datacenters = {{list .Datacenters}}
  node_pool   = {{hcl .NodePool}}

  # One node at a time: an updated edge syncs every live deployment before
  # its check passes, and only then does the next node update.
  update {
    max_parallel      = 1
    min_healthy_time  = "10s"
    healthy_deadline  = "10m"
    progress_deadline = "15m"
  }

  group "edge" {
    network {
      port "http" {
{{- if ge .Port 1}}
        static = {{.Port}}
{{- end}}
      }
    }

    # The content-addressed cache survives updates of the job on the same
    # node, so a new version starts with every blob it had.
    ephemeral_disk {
      size   = {{.CacheMB}}
      sticky = true
    }

    # An edge region cut off from the Nomad servers keeps serving what it
    # holds; Nomad counts it lost only after this long.
    disconnect {
      lost_after = {{hcl .LostAfter}}
      replace    = false
      reconcile  = "keep_original"
    }

    # For load balancers and DNS. The cutover counts the service
    # "pier-edge" instead, which every edge registers itself, with its own
    # check, once it has synced (docs/operations.md).
    service {
      name     = "pier-edge-http"
      provider = {{hcl .Provider}}
      port     = "http"
      tags     = ["pier", "http", "${NOMAD_DC}"]

      check {
        name     = "pier edge"
        type     = "http"
        path     = "/healthz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 10
      interval = "30m"
      delay    = "10s"
      mode     = "delay"
    }

    task "edge" {
      driver = {{hcl .Driver}}

      config {
{{- if eq .Driver "docker"}}
        image        = {{hcl .Image}}
        network_mode = "host"
{{- end}}
        command = {{hcl .Command}}
        args    = ["serve", "--roles", "edge"{{if .Config}}, "--config", "${NOMAD_TASK_DIR}/pier.hcl"{{end}}]
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

      # The edge leaves the pool (deregisters from Consul) and finishes the
      # requests in flight before it exits.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = {{.CPU}}
        memory = {{.MemoryMB}}
      }
    }
  }
}
