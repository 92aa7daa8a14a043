# Nomad client agents: every machine that runs Pier's jobs, in every region.
# Which jobs a machine gets is its node pool (regions/*.hcl): "control"
# (the control job), "builds" (the build and cron jobs) and "edge" (the edge
# system job), so builds never run on an edge machine. Installed as
# /etc/nomad.d/pier.hcl next to one regions/ file and a per-node file
# (name, servers to join):
#
#   nomad agent -config /etc/nomad.d

region    = "global"
data_dir  = "/opt/nomad/data"
bind_addr = "0.0.0.0"
log_level = "INFO"

disable_update_check = true

client {
  enabled = true

  # Leave the build nodes' memory to builds, not to a cache of images.
  gc_max_allocs = 50

  # Keep Nomad's own fingerprinting off cloud metadata endpoints that the
  # build firewall (builder-firewall.sh) closes anyway.
  options = {
    "fingerprint.denylist" = "env_gce,env_azure,env_digitalocean"
  }
}

acl {
  enabled = true
}

tls {
  http = true
  rpc  = true

  ca_file   = "/etc/pier/tls/ca.pem"
  cert_file = "/etc/pier/tls/nomad-client.pem"
  key_file  = "/etc/pier/tls/nomad-client-key.pem"

  verify_server_hostname = true
  verify_https_client    = false
}

consul {
  address = "127.0.0.1:8500"
}

vault {
  enabled = true
  address = "https://vault.service.consul:8200"
}

# Docker for Pier's images (control, edge, builds). No privileged
# containers, no host volumes: nothing Pier runs needs them.
plugin "docker" {
  config {
    allow_privileged = false
    volumes {
      enabled = false
    }
    # Pull the pinned image tag again only when it changes.
    gc {
      image       = true
      image_delay = "1h"
    }
  }
}

# exec (namespaces and cgroups, no Docker) for the exec variants of the
# jobs. raw_exec stays off: it has no isolation (nomad/dev.hcl enables it
# for development only).
plugin "exec" {
  config {
    default_pid_mode = "private"
    default_ipc_mode = "private"
  }
}

telemetry {
  prometheus_metrics         = true
  publish_allocation_metrics = true
  publish_node_metrics       = true
  disable_hostname           = true
}
