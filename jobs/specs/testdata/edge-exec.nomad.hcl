# Rendered from jobs/specs/edge.nomad.hcl by specs.RenderEdge; do not edit.
job "pier-edge" {
  type        = "system"
  namespace   = "default"
  datacenters = ["*"]
  node_pool   = "default"

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
      }
    }

    # The content-addressed cache survives updates of the job on the same
    # node, so a new version starts with every blob it had.
    ephemeral_disk {
      size   = 512
      sticky = true
    }

    # An edge region cut off from the Nomad servers keeps serving what it
    # holds; Nomad counts it lost only after this long.
    disconnect {
      lost_after = "1h"
      replace    = false
      reconcile  = "keep_original"
    }

    # For load balancers and DNS. The cutover counts the service
    # "pier-edge" instead, which every edge registers itself, with its own
    # check, once it has synced (docs/operations.md).
    service {
      name     = "pier-edge-http"
      provider = "nomad"
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
      driver = "exec"

      config {
        command = "/usr/local/bin/pier"
        args    = ["serve", "--roles", "edge"]
      }

      env {
        PIER_DATA_DIR       = "$${NOMAD_ALLOC_DIR}/data"
        PIER_EDGE_CACHE_DIR = "$${NOMAD_ALLOC_DIR}/data/cache"
        PIER_EDGE_ID        = "edge-$${node.unique.id}"
        PIER_EDGE_LISTEN    = "$${NOMAD_ADDR_http}"
      }

      # The edge leaves the pool (deregisters from Consul) and finishes the
      # requests in flight before it exits.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
