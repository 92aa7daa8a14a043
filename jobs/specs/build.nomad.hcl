{{/*
  build.nomad.hcl: the build worker as a parameterized batch job. Control
  registers it once and dispatches it for every claimed build, with the JSON
  jobs.BuildRequest as the payload and the deployment ID as meta. Rendered by
  Render (specs.go) with text/template; every value from BuildVars goes
  through hcl, which quotes it as an HCL string literal (and escapes "${" so
  nothing in it is evaluated when the spec is parsed; Nomad still
  interpolates runtime variables such as ${NOMAD_TASK_DIR} when the task
  starts).
*/ -}}
# Rendered from jobs/specs/build.nomad.hcl by specs.Render; do not edit.
job "pier-build" {
  type        = "batch"
  namespace   = {{hcl .Namespace}}
  datacenters = [{{range $i, $dc := .Datacenters}}{{if $i}}, {{end}}{{hcl $dc}}{{end}}]
  node_pool   = {{hcl .NodePool}}

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
      size = {{.DiskMB}}
    }

    task "build" {
      driver = {{hcl .Driver}}

      dispatch_payload {
        file = "request.json"
      }

{{- if .User}}
      user   = {{hcl .User}}
{{- end}}

      config {
{{- if eq .Driver "docker"}}
        image   = {{hcl .Image}}
        # Builds reach the internet, never the cluster (nomad/builder-firewall.sh).
        network_mode = {{hcl .Network}}
        security_opt = ["no-new-privileges"]
        pids_limit   = 4096
{{- end}}
        command = {{hcl .PierPath}}
        args = [
          "build",
          "--request", "${NOMAD_TASK_DIR}/request.json",
          "--result", "-",
{{- range .Args}}
          {{hcl .}},
{{- end}}
        ]
      }

{{- if .Env}}

      env {
{{- range $k, $v := .Env}}
        {{$k}} = {{hcl $v}}
{{- end}}
      }
{{- end}}

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
        cpu    = {{.CPU}}
        memory = {{.MemoryMB}}
      }
    }
  }
}
