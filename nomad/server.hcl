# Nomad server agents: three in the control region (Sydney). Every client
# node, in every region, joins them; the edge regions (Melbourne,
# Singapore) are Nomad datacenters of this one region, so one
# `nomad job run` of the edge job places an edge on every edge node
# everywhere (multi-region Nomad jobs are an Enterprise feature, and a
# client tolerates the distance: its heartbeats are RPCs, not gossip).
# Installed by terraform/modules/control-region (and the Vagrantfile) as
# /etc/nomad.d/pier.hcl next to regions/syd-server.hcl and a per-node file
# (name, advertise addresses, gossip key):
#
#   nomad agent -config /etc/nomad.d

region     = "global"
datacenter = "syd"
data_dir   = "/opt/nomad/data"
bind_addr  = "0.0.0.0"
log_level  = "INFO"

disable_update_check = true

server {
  enabled          = true
  bootstrap_expect = 3

  # An edge region whose link drops for a while must not have its nodes
  # marked down at once: jobs/specs' edge job keeps running allocations of
  # disconnected clients (its disconnect block), and this grace covers
  # short blips without any rescheduling at all.
  heartbeat_grace = "1m"

  # Builds are batch jobs: keep their records long enough to debug a
  # failed build from the UI, then let them go.
  job_gc_threshold        = "24h"
  eval_gc_threshold       = "1h"
  batch_eval_gc_threshold = "24h"
}

# Every API call needs a token (nomad/acl: pier-control for control's
# builds, pier-deploy for whoever runs the jobs, pier-readonly for people
# watching the UI).
acl {
  enabled = true
}

# TLS for the HTTP API and for RPC between agents, with host names
# checked (server.global.nomad, client.global.nomad).
tls {
  http = true
  rpc  = true

  ca_file   = "/etc/pier/tls/ca.pem"
  cert_file = "/etc/pier/tls/nomad-server.pem"
  key_file  = "/etc/pier/tls/nomad-server-key.pem"

  verify_server_hostname = true
  # The API authenticates with ACL tokens; browsers have no client
  # certificate.
  verify_https_client = false
}

# The local Consul agent (consul/client.hcl on loopback). Services and
# templates get Consul tokens from their workload identity
# (`nomad setup consul` creates the auth method once).
consul {
  address = "127.0.0.1:8500"
  service_identity {
    aud = ["consul.io"]
    ttl = "1h"
  }
  task_identity {
    aud = ["consul.io"]
    ttl = "1h"
  }
}

# Vault through workload identity: a task with a vault block (the control
# job's VaultRole) logs in at auth/jwt-nomad (`nomad setup vault`,
# vault/nomad-role-pier-control.json).
vault {
  enabled = true
  address = "https://vault.service.consul:8200"
  default_identity {
    aud = ["vault.io"]
    ttl = "1h"
  }
}

telemetry {
  prometheus_metrics         = true
  publish_allocation_metrics = true
  publish_node_metrics       = true
  disable_hostname           = true
}

ui {
  enabled = true
}
